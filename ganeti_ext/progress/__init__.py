"""snf-progress-monitor: image deployment progress (stdin) into eventd's spool."""
