"""Where the machine refuses network namespaces, the multi-host tests skip and say why (bench/netns)."""

from bench.netns import links


def test_not_root_says_namespaces_need_root(monkeypatch):
    monkeypatch.setattr(links.os, "geteuid", lambda: 1000)
    assert links.unavailable() == "network namespaces need root (this process runs as uid 1000)"


def test_no_ip_command_says_iproute2_is_missing(monkeypatch):
    monkeypatch.setattr(links.os, "geteuid", lambda: 0)
    monkeypatch.setattr(links.shutil, "which", lambda name: None)
    assert links.unavailable() == "the `ip` command (iproute2) is not installed"
