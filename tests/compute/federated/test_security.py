"""Data protection of the federation: key files."""

from __future__ import annotations

import os
import stat

import pytest

from oncorwe.compute.federated.server import TLSConfig, make_tls_material
from oncorwe.core.errors import OncorweError

SITES = ["A", "B"]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_material(tmp_path_factory.mktemp("tls"), SITES)


# ---------------------------------------------------------------------- key files
@pytest.mark.parametrize("tool", ["cryptography", "openssl"])
def test_reused_folder_with_readable_keys_gets_new_0600_keys(tmp_path, capsys, tool):
    if tool == "cryptography":
        pytest.importorskip("cryptography")
    first = make_tls_material(tmp_path, SITES, tool=tool)
    old = first.server_key.read_bytes()
    first.server_key.chmod(0o644)
    first.client_certs["A"][0].chmod(0o644)
    again = make_tls_material(tmp_path, SITES, tool=tool)
    keys = sorted(tmp_path.glob("*.key"))
    assert keys and {k.name: _mode(k) for k in keys} == {k.name: 0o600 for k in keys}
    assert again.server_key.read_bytes() != old
    err = capsys.readouterr().err
    assert "[oncorwe] warning: TLS key file(s) ['A.key', 'server.key']" in err
    assert "replaced by new keys with mode 0600" in err


def test_tls_files_with_a_key_others_can_read_are_refused(tls, tmp_path):
    d = tmp_path / "given"
    make_tls_material(d, SITES)
    (d / "B.key").chmod(0o640)
    with pytest.raises(OncorweError, match=r"B\.key' can be read by others \(mode 0o640"):
        TLSConfig.from_dir(d, SITES)
