"""The reproduction report (keras_sar2opt.reports.report): run and evaluation folders laid out like the
report's tables and figures."""
