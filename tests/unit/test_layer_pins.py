"""The layer ships what the tests ran: layers/shared/requirements.txt, the repository's
constraints.txt (the pins the layer's build and the development virtualenv both install
with) and the virtualenv the tests run in must agree, boto3 and botocore included."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from devstack.deploy_check import (
    CONSTRAINTS,
    canonical,
    closure,
    freeze_constraints,
    installed_version,
    layer_requirements,
    read_pins,
)

ROOT = Path(__file__).resolve().parents[2]
PINS = read_pins()
REQUIREMENTS = layer_requirements()
LAYER_SET = closure(REQUIREMENTS)  # on Lambda's python3.13/arm64 (markers), from this virtualenv
# what the layer's code and the tests lean on most: each must be pinned, and installed here at its pin
KEY_PACKAGES = (
    "boto3",
    "botocore",
    "aws-lambda-powertools",
    "pydantic",
    "pydantic-core",
    "httpx",
    "pyjwt",
    "cryptography",
)


def test_constraints_are_plain_pins():
    # read_pins refuses ranges, extras and duplicates; an empty file would pin nothing
    assert len(PINS) >= len(REQUIREMENTS)


def test_the_layer_ships_boto3_and_botocore():
    # Lambda's runtime has its own boto3, but the layer's (tested) one comes first on sys.path
    assert {"boto3", "botocore"} <= {canonical(r.name) for r in REQUIREMENTS}


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_every_layer_requirement_is_pinned_and_its_pin_satisfies_it(requirement):
    name = canonical(requirement.name)
    assert name in PINS, f"{name} is a layer requirement but not pinned in constraints.txt"
    assert SpecifierSet(str(requirement.specifier)).contains(PINS[name], prereleases=True), (
        f"layers/shared/requirements.txt wants {requirement}, constraints.txt pins {PINS[name]}"
    )


def test_every_package_the_layer_installs_is_pinned():
    unpinned = sorted(set(LAYER_SET) - set(PINS))
    assert unpinned == [], f"the layer would install these unpinned: {unpinned} (run --freeze-constraints)"


def test_nothing_is_pinned_that_the_layer_does_not_install():
    # constraints.txt is the layer's set: a stray pin is a dependency dropped or renamed
    assert sorted(set(PINS) - set(LAYER_SET)) == []


def test_the_layer_needs_nothing_this_virtualenv_lacks():
    missing = sorted(name for name, version in LAYER_SET.items() if not version)
    assert missing == [], f"the layer needs these, the tests never import them: {missing}"


@pytest.mark.parametrize("name", sorted(PINS))
def test_the_virtualenv_runs_the_pinned_version(name):
    assert installed_version(name) == PINS[name], (
        f"{name}: installed {installed_version(name)}, pinned {PINS[name]} "
        "(reinstall: make venv, or pip install -c constraints.txt -r requirements-dev.txt)"
    )


@pytest.mark.parametrize("name", KEY_PACKAGES)
def test_key_packages_are_pinned_and_installed_at_their_pin(name):
    assert name in PINS
    assert installed_version(name) == PINS[name]


def test_constraints_are_what_freezing_the_virtualenv_gives():
    pins = [line for line in freeze_constraints().splitlines() if line and not line.startswith("#")]
    current = [line for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")]
    assert pins == current


def test_both_installs_use_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    install = [line for line in makefile.splitlines() if "pip install" in line and "requirements-dev.txt" in line]
    assert install and all("-c constraints.txt" in line for line in install)
    layer = (ROOT / "layers" / "shared" / "Makefile").read_text()
    assert '-c "$(CONSTRAINTS)"' in layer and "CONSTRAINTS := $(ROOT)/constraints.txt" in layer
    assert "--invalidation-mode unchecked-hash" in layer
