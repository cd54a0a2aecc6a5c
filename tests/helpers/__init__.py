"""Helpers the tests import (fixtures stay in conftest.py): images, model packages, the API, agents, the reference upstream."""
