import pytest

from etl.identifiers import identifier_kind, identifier_problem
from tests.conftest import make_integration


@pytest.mark.parametrize(
    ("vendor", "kind"),
    [
        ("talkdesk", "email"),
        ("ujet", "email"),
        ("five9", "user_name"),
        ("genesys_cloud", "user_name"),
        ("genesys_engage", "user_name"),
        ("sikom", "user_name"),
        ("mitel", "user_name"),
        ("avaya_cms", "user_name"),
        ("vonage", "agent_id"),
        ("simulator", "user_name"),
        ("database", "any"),
        ("csv", "any"),
    ],
)
def test_identifier_kind_per_vendor(vendor, kind):
    assert identifier_kind(make_integration(vendor=vendor, source={})) == kind


@pytest.mark.parametrize(
    ("field", "kind"), [(None, "user_name"), ("email", "email"), ("name", "any"), ("id", "any")]
)
def test_genesys_cloud_kind_follows_its_user_field(field, kind):
    source = {"user_identifier": field} if field else {}
    assert identifier_kind(make_integration(vendor="genesys_cloud", source=source)) == kind


def test_simulator_kind_follows_its_setting():
    integration = make_integration(source={"user_identifiers": "email"})
    assert identifier_kind(integration) == "email"


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("anna.smith@example.com", "email", None),
        ("Anna.Smith", "email", (True, "'Anna.Smith' is not an email address")),
        ("anna@localhost", "email", (True, "'anna@localhost' is not an email address")),
        ("10042", "agent_id", None),
        (
            "anna@example.com",
            "agent_id",
            (False, "'anna@example.com' does not look like an agent id"),
        ),
        ("Anna.Smith", "user_name", None),
        ("anna.smith@example.com", "user_name", None),  # some systems use emails as user names
        ("Anna.Smith", "any", None),
    ],
)
def test_identifier_problems(value, kind, expected):
    assert identifier_problem(value, kind) == expected


def test_surrounding_spaces_are_a_warning_for_every_kind():
    for value, kind in [(" Anna.Smith", "user_name"), ("a@b.de ", "email"), ("42 ", "agent_id")]:
        fatal, reason = identifier_problem(value, kind)
        assert not fatal
        assert "leading or trailing spaces" in reason
