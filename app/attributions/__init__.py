"""Attribution methods (Shapley values over features or words, integrated gradients): why a
model predicts what it does, for one row. Each input kind (`app.kinds`) picks its method and
builds its explainer; `app.explain` runs them for `:explain` requests (queueing, deadlines)."""
