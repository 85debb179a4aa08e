"""Protocols: peers over the one core (`app.core`). Each decodes its requests into rows with
the selected version's adapter, calls `InferenceCore.infer`, and encodes the probabilities:
`v1` (the friendly REST API), `v2` (Open Inference Protocol). Nothing else lives here."""
