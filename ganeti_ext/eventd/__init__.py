"""snf-ganeti-eventd: publishes Ganeti job status changes to AMQP, losing nothing."""
