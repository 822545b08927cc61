import pytest

from ganeti_ext.amqp import routing
from ganeti_ext.errors import ValidationError


@pytest.mark.parametrize(
    "name, prefix",
    [("snf-42", "snf"), ("snf-net-7", "snf"), ("web1", "web1"), ("a-b-c", "a")],
)
def test_prefix_is_the_name_up_to_the_first_dash(name, prefix):
    assert routing.prefix_of(name) == prefix


@pytest.mark.parametrize("name", ["", "-42", "sn*f-1", "a#-1"])
def test_names_that_cannot_make_a_key(name):
    with pytest.raises(ValidationError):
        routing.prefix_of(name)


@pytest.mark.parametrize(
    "message_type, name, key",
    [
        ("ganeti-op-status", "snf-42", "ganeti.snf.event.op"),
        ("ganeti-network-status", "snf-net-7", "ganeti.snf.event.network"),
        ("ganeti-cluster-status", None, "ganeti.event.cluster"),
        ("eventd-heartbeat", None, "eventd.heartbeat"),
        ("image-copy-progress", "snf-42", "ganeti.snf.event.progress"),
        ("image-info", "snf-42", "ganeti.snf.event.progress"),
        ("image-error", "snf-42", "ganeti.snf.event.progress"),
        ("image-helper", "snf-42", "ganeti.snf.event.progress"),
    ],
)
def test_routing_keys_per_message_type(message_type, name, key):
    assert routing.routing_key_for(message_type, name) == key


def test_unknown_type_and_missing_name():
    with pytest.raises(ValidationError, match=r"unknown message type"):
        routing.routing_key_for("ganeti-disk-status", "snf-1")
    with pytest.raises(ValidationError, match=r"needs an instance or network name"):
        routing.routing_key_for("ganeti-op-status")
