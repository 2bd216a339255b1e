"""One check of a habilitation's role and camera group names, for the API, csuctl and OIDC grants."""

import pytest
from pydantic import ValidationError

from services.common.settings import OidcGrant
from services.gateway.identity import accounts


@pytest.mark.parametrize("group", ["Centre!", "Nord Est", "", "-north", "a" * 65, "**", "nord\n"])
def test_an_invalid_group_is_refused_by_accounts_and_by_oidc_grants_alike(group: str) -> None:
    with pytest.raises(accounts.AccountError) as refused:
        accounts.check_habilitation("operator", ["north", group])
    assert refused.value.status == 422 and refused.value.message == f"invalid camera group {group!r}"
    with pytest.raises(ValidationError, match="invalid camera group"):
        OidcGrant(role="operator", camera_groups=[group])


def test_an_unknown_role_is_refused_and_named_with_the_known_ones() -> None:
    with pytest.raises(accounts.AccountError, match=r"unknown role 'superuser'; roles: .*operator"):
        accounts.check_habilitation("superuser", ["north"])


def test_valid_habilitations_and_absent_fields_pass() -> None:
    accounts.check_habilitation("operator", ["north", "south_2", "*"])
    accounts.check_habilitation(None, None)
    accounts.check_habilitation("admin", [])
