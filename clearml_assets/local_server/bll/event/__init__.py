"""Event logic (clearml-server ``bll/event``): reads of logs, scalars, plots and debug images, their iterators."""
