"""python3 -m ganeti_ext.progress: the same as snf-progress-monitor."""

from ganeti_ext.progress.monitor import main

main()
