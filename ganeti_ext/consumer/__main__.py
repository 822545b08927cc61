"""python3 -m ganeti_ext.consumer: the same as snf-events."""

from ganeti_ext.consumer.cli import main

main()
