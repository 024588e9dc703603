"""Which GitHub repository a remote's URL names, for github.com and GitHub Enterprise."""

from __future__ import annotations

import pytest

from superset_bot.forges.github import slug_from_remote


@pytest.mark.parametrize("url", [
    "git@github.com:acme/web.git", "git@github.com:acme/web", "https://github.com/acme/web.git",
    "https://github.com/acme/web", "https://x-access-token:abc@github.com/acme/web.git",
    "ssh://git@github.com/acme/web.git", "ssh://git@github.com:22/acme/web.git", "https://GitHub.com/acme/web/",
])
def test_github_com_urls(url: str) -> None:
    assert slug_from_remote(url) == "acme/web"


def test_an_enterprise_host_is_the_api_urls_host() -> None:
    api = "https://github.example.com/api/v3"
    assert slug_from_remote("git@github.example.com:team/app.git", api) == "team/app"
    assert slug_from_remote("git@github.com:team/app.git", api) is None, "another host is not that GitHub"


@pytest.mark.parametrize("url", ["/srv/remote.git", "file:///srv/remote.git", "https://gitlab.com/acme/web.git",
                                 "https://github.com/acme", "", "git@github.com:acme/web/extra.git"])
def test_what_is_not_a_github_repository(url: str) -> None:
    assert slug_from_remote(url) is None
