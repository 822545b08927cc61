"""python3 -m ganeti_ext.eventd: the same as /usr/sbin/snf-ganeti-eventd."""

from ganeti_ext.eventd.cli import run

run()
