"""The model pull: newer signed bundles from the upstream model catalogue, installed when online.

One round (:meth:`ModelPuller.run_once`, ``edgecv models pull``; the agent every
``model_pull.interval_s`` when ``model_pull.enabled``):

1. ``GET /v1/tenants/{t}/models`` (``sync/openapi.yaml``): name, version, size, sha256, url per bundle;
2. for each followed model (``model_pull.models``, else the models installed here) the highest catalogue
   version above the installed one is downloaded with resume and installed by
   :func:`edgecv.runtime.lifecycle.install_url`: signature against ``trusted_keys``, sha256, acceptance
   gate on this device, atomic switch. A refused version is not fetched again by this process until the
   catalogue's sha256 for it changes (the next lower version is tried instead); the version an operator
   rolled back from is left alone; a download that stopped is resumed next round;
3. ``PUT /v1/tenants/{t}/devices/{deviceId}/models``: the versions installed here.

The previous version stays active on every failure (that is the install's guarantee).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote, urlsplit

from edgecv import __version__
from edgecv.config import Config
from edgecv.errors import EdgecvError, InstallInProgress, SyncNotConfigured, UpstreamUnreachable
from edgecv.records import utc_now
from edgecv.runtime.installed import installed_models
from edgecv.runtime.lifecycle import install_url, read_state
from edgecv.store import Store
from edgecv.upstream.relay import require_sync_url, resolve_device_id
from edgecv.upstream.transport import Transport

log = logging.getLogger(__name__)

RETRY_AFTER_UNREACHABLE_S = 60.0


def version_key(version: str) -> tuple:
    """Order versions the way people number them: ``1.10.0`` after ``1.9.2``; numbers before words."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+_-]", version))


class ModelPuller:
    """Pulls newer bundles from the model catalogue and reports the installed versions."""

    def __init__(self, store: Store, config: Config, transport: Transport | None = None) -> None:
        require_sync_url(config.sync)
        self.config, self.store = config, store
        self.transport = transport or Transport(config.sync.url, config.sync.timeout_s)
        self.device_id = resolve_device_id(store, config.sync)
        self._refused: dict[tuple[str, str], str] = {}  # (name, version) -> the sha256 that was refused
        self.last_round: dict[str, Any] | None = None
        tenant = quote(config.tenant_id, safe="")
        self._models_path = f"/v1/tenants/{tenant}/models"
        self._report_path = f"/v1/tenants/{tenant}/devices/{quote(self.device_id, safe='')}/models"

    def run_forever(self, stop_event: threading.Event) -> None:
        log.info(
            "model pull started: every %.0fs from %s", self.config.model_pull.interval_s, self.config.sync.url
        )
        try:
            while not stop_event.is_set():
                try:
                    outcome = self.run_once()
                    delay = self.config.model_pull.interval_s
                    if not outcome["reachable"] or outcome["retry"]:
                        delay = min(delay, RETRY_AFTER_UNREACHABLE_S)
                except Exception:  # log it, keep the loop alive
                    log.exception("model pull round failed")
                    delay = RETRY_AFTER_UNREACHABLE_S
                stop_event.wait(delay)
        finally:
            self.transport.close()

    def run_once(self) -> dict[str, Any]:
        """One round. Returns ``{"reachable", "installed", "refused", "retry", "upToDate", "reported",
        "lines"}`` (``lines``: one sentence per model for the CLI)."""
        outcome: dict[str, Any] = {
            "at": utc_now(),
            "reachable": False,
            "installed": [],
            "refused": [],
            "retry": [],
            "upToDate": [],
            "reported": False,
            "lines": [],
        }
        try:
            catalogue = self._catalogue()
        except UpstreamUnreachable as exc:
            outcome["lines"].append(f"model catalogue not reachable: {exc}")
            log.warning("model pull: catalogue not reachable: %s", exc)
            self.last_round = outcome
            return outcome
        outcome["reachable"] = True
        for name, entries in self._candidates(catalogue).items():
            self._pull_one(name, entries, outcome)
        try:
            self._report()
            outcome["reported"] = True
        except (UpstreamUnreachable, EdgecvError) as exc:
            outcome["lines"].append(f"installed versions not reported: {exc}")
            log.warning("model pull: installed versions not reported: %s", exc)
        self.last_round = outcome
        return outcome

    # -- one round ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"edgecv/{__version__}", "X-Edgecv-Device": self.device_id}
        if self.config.sync.api_key:
            headers["Authorization"] = f"Bearer {self.config.sync.api_key}"
        return headers

    def _catalogue(self) -> list[dict[str, Any]]:
        resp = self.transport.request("GET", self._models_path, None, self._headers())
        if resp.status != 200:
            raise UpstreamUnreachable(f"GET {self._models_path}: HTTP {resp.status} {resp.error_text()}")
        try:
            entries = (resp.json() or {})["models"]
            return [
                e
                for e in entries
                if isinstance(e.get("name"), str)
                and isinstance(e.get("version"), str)
                and isinstance(e.get("url"), str)
                and isinstance(e.get("size"), int)
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamUnreachable(f"GET {self._models_path}: not a model catalogue ({exc})") from None

    def _installed_versions(self) -> dict[str, str]:
        return {name: pkg.version for name, pkg in installed_models(self.config).items()}

    def _candidates(self, catalogue: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Per followed model: the catalogue entries above the installed version, newest first."""
        installed = self._installed_versions()
        follow = self.config.model_pull.models or sorted(installed)
        out: dict[str, list[dict[str, Any]]] = {}
        for name in follow:
            current = installed.get(name)
            newer = [
                e
                for e in catalogue
                if e["name"] == name and (current is None or version_key(e["version"]) > version_key(current))
            ]
            out[name] = sorted(newer, key=lambda e: version_key(e["version"]), reverse=True)
        return out

    def _pull_one(self, name: str, entries: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
        """Install the newest entry that is neither refused before nor rolled back from; a refusal
        moves on to the next one, a download that stopped ends the model's turn (resumed next round)."""
        rolled_back_from = read_state(self.config, name)["previous"]
        for entry in entries:
            version, sha = entry["version"], entry.get("sha256")
            if version == rolled_back_from:
                outcome["lines"].append(
                    f"{name} {version}: rolled back from here; not installed again (`edgecv models "
                    f"rollback {name}` returns to it)"
                )
                continue
            if self._refused.get((name, version)) == sha:
                outcome["lines"].append(f"{name} {version}: refused earlier; not fetched again")
                continue
            if self._install(name, entry, outcome) != "refused":
                return
        outcome["upToDate"].append(name)

    def _install(self, name: str, entry: dict[str, Any], outcome: dict[str, Any]) -> str:
        version, sha = entry["version"], entry.get("sha256")
        url = self._absolute(entry["url"])
        try:
            report = install_url(
                self.config,
                url,
                size=entry["size"],
                sha256=sha if isinstance(sha, str) else None,
                headers=self._download_headers(url),
                timeout_s=self.config.sync.timeout_s,
            )
        except (UpstreamUnreachable, InstallInProgress) as exc:
            outcome["retry"].append({"name": name, "version": version, "error": str(exc)})
            outcome["lines"].append(f"{name} {version}: not installed yet, retried next round: {exc}")
            log.warning("model pull: %s %s not installed yet: %s", name, version, exc)
            return "retry"
        except EdgecvError as exc:
            self._refused[(name, version)] = sha
            outcome["refused"].append({"name": name, "version": version, "error": str(exc)})
            outcome["lines"].append(f"{name} {version}: refused: {exc}")
            log.error(
                "model pull: %s %s refused (the installed version stays active): %s", name, version, exc
            )
            return "refused"
        outcome["installed"].append({"name": name, "version": version, "previous": report.previous})
        outcome["lines"].append(f"{name}: installed {version} (previous: {report.previous or 'none'})")
        log.info("model pull: installed %s %s (previous %s)", name, version, report.previous)
        return "installed"

    def _absolute(self, url: str) -> str:
        if url.startswith(("http://", "https://")):
            return url
        base = urlsplit(self.config.sync.url)
        return (
            f"{base.scheme}://{base.netloc}{self.transport.prefix}{url if url.startswith('/') else '/' + url}"
        )

    def _download_headers(self, url: str) -> dict[str, str]:
        """The API key goes only to the sync server itself, never to another host the catalogue names."""
        headers = self._headers()
        if urlsplit(url).netloc != urlsplit(self.config.sync.url).netloc:
            headers.pop("Authorization", None)
        return headers

    def installed_report(self) -> list[dict[str, Any]]:
        report = []
        for name, version in sorted(self._installed_versions().items()):
            state = read_state(self.config, name)
            report.append(
                {
                    "name": name,
                    "version": version,
                    "previous": state["previous"],
                    "source": "bundle" if state["current"] else "package",
                }
            )
        return report

    def _report(self) -> None:
        import json

        body = json.dumps({"deviceId": self.device_id, "models": self.installed_report()}).encode()
        headers = {**self._headers(), "Content-Type": "application/json"}
        resp = self.transport.request("PUT", self._report_path, body, headers)
        if resp.status != 200:
            raise UpstreamUnreachable(f"PUT {self._report_path}: HTTP {resp.status} {resp.error_text()}")


def pull_once(config: Config) -> dict[str, Any]:
    """``edgecv models pull``: one round now."""
    if not config.sync.url:
        raise SyncNotConfigured("sync.url is not set; set [sync] url in edgecv.toml or EDGECV_SYNC_URL")
    store = Store(config.db_path)
    puller = ModelPuller(store, config)
    try:
        return puller.run_once()
    finally:
        puller.transport.close()
        store.close()
