"""Live drift and data quality per feature, against the reference a bundle carries.

``reference`` is what ``publish --sample`` records: per feature, quantile bins (numbers) or the
top categories (strings) with their shares, the range and the missing share, and the same for
the predictions. ``binning`` puts values into those bins and computes the population stability
index (pure). ``window`` keeps the bins of the last rows a model answered. ``monitor`` summarises
the rows a lane answered off the request path, in one worker thread for the process, and exports
the series; ``report`` computes the same table for a file (``python -m predictor drift-report``).
"""
