"""``edgecv serve`` refuses what it must refuse, before binding anything."""

from __future__ import annotations

from click.testing import CliRunner

from edgecv.cli import main


def test_serve_refuses_a_public_bind_without_a_token(tmp_path):
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "serve", "--host", "0.0.0.0", "--port", "8999"],
        env={"EDGECV_API_TOKEN": ""},
    )
    assert result.exit_code == 1
    assert "no api.token is set" in result.output


def test_serve_has_help():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "bearer token" in result.output
