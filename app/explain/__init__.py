"""Explanations (`:explain`): the service that runs each version's explainer (its input
kind's, from `app.attributions`) on a worker of its own; no HTTP."""
