"""Issue #16 item 7: the ECR lifecycle never expires what runs; only unreferenced images expire.

The policy is evaluated by :func:`evaluate`, a small model of ECR's documented evaluation (ECR User Guide,
"Lifecycle policy evaluation rules"): rules apply lowest priority number first; an image matching the
tagging requirements of a higher-priority rule cannot be expired by a lower-priority one; count rules sort
the images they select newest first and expire those beyond the count; ``tagPrefixList`` matches when any
tag starts with a listed prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from infra.pipeline.registry import CACHE_TAG, MUTABLE_TAG_FILTERS, lifecycle_policy
from policy.policies import ALLOWED_MUTABLE_TAG_FILTERS
from release.contracts import KEEP_CONSUMERS, RELEASE_TAG_PREFIX, keep_tag
from tools.plan.offline import OfflineRun


@dataclass(frozen=True)
class Image:
    digest: str
    pushed_day: int  # days since the repository's first push; larger is newer
    tags: tuple[str, ...]


def _matches(rule: dict, image: Image) -> bool:
    selection = rule["selection"]
    status = selection["tagStatus"]
    if status == "untagged":
        return not image.tags
    if status == "any":
        return True
    prefixes = selection.get("tagPrefixList", [])
    return bool(image.tags) and all(any(t.startswith(p) for t in image.tags) for p in prefixes)


def evaluate(policy: str, images: list[Image], today: int) -> set[str]:
    """Digests the policy expires."""
    claimed: set[str] = set()
    expired: set[str] = set()
    for rule in sorted(json.loads(policy)["rules"], key=lambda r: r["rulePriority"]):
        selection = rule["selection"]
        selected = [i for i in images if _matches(rule, i) and i.digest not in claimed]
        if selection["countType"] == "imageCountMoreThan":
            newest_first = sorted(selected, key=lambda i: i.pushed_day, reverse=True)
            expired |= {i.digest for i in newest_first[selection["countNumber"] :]}
        else:
            expired |= {i.digest for i in selected if today - i.pushed_day > selection["countNumber"]}
        claimed |= {i.digest for i in selected}
    return expired


def _history() -> list[Image]:
    """200 builds; every 10th released; prod runs an old release, a Batch job an even older jobs build."""
    images = []
    for n in range(200):
        tags = [f"sha{n:03d}-m{n}"]
        if n % 10 == 0:
            tags.append(f"{RELEASE_TAG_PREFIX}{n:03d}")
        if n == 20:
            tags.append(keep_tag("prod"))  # rolled back / never promoted again since day 20
        if n == 3:
            tags.append(keep_tag("batch"))
        if n == 199:
            tags.append(keep_tag("stage"))
        images.append(Image(f"sha256:{n:064x}", n, tuple(tags)))
    images.append(Image("sha256:" + "f" * 64, 5, ()))  # a superseded cache manifest
    return images


def test_what_runs_and_the_last_releases_are_never_expired() -> None:
    images = _history()
    expired = evaluate(lifecycle_policy(keep=30, releases=10), images, today=400)
    kept = {i.digest: i for i in images if i.digest not in expired}
    running = [i for i in images if any(t.startswith("keep-") for t in i.tags)]
    assert len(running) == len(KEEP_CONSUMERS)
    assert all(i.digest in kept for i in running)
    releases = sorted((i for i in images if any(t.startswith(RELEASE_TAG_PREFIX) for t in i.tags)),
                      key=lambda i: i.pushed_day, reverse=True)  # fmt: skip
    assert all(i.digest in kept for i in releases[:10])
    # Older releases nothing runs do expire, as do old unreferenced builds and the stale cache manifest.
    assert {i.digest for i in releases[10:] if i.pushed_day != 20} <= expired
    assert f"sha256:{4:064x}" in expired and "sha256:" + "f" * 64 in expired
    assert len([i for i in kept.values() if not any(t.startswith(("keep-", "release-")) for t in i.tags)]) <= 30


def test_the_old_count_rule_would_have_expired_prod() -> None:
    """The rule this replaces ("keep the newest 30, any tag") expires the image prod runs."""
    old = json.dumps({"rules": [{"rulePriority": 2, "selection": {"tagStatus": "any", "countType":
                      "imageCountMoreThan", "countNumber": 30}, "action": {"type": "expire"}}]})  # fmt: skip
    prod = next(i for i in _history() if keep_tag("prod") in i.tags)
    assert prod.digest in evaluate(old, _history(), today=400)
    assert prod.digest not in evaluate(lifecycle_policy(keep=30), _history(), today=400)


def test_any_rule_comes_last_as_ecr_requires() -> None:
    rules = sorted(json.loads(lifecycle_policy(30))["rules"], key=lambda r: r["rulePriority"])
    assert rules[-1]["selection"]["tagStatus"] == "any"
    assert len({r["rulePriority"] for r in rules}) == len(rules)


def test_repositories_keep_tags_immutable_but_the_moving_references(stack: OfflineRun) -> None:
    releases = 10
    for repository in stack.of_type("aws:ecr/repository:Repository"):
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        filters = repository.inputs["imageTagMutabilityExclusionFilters"]
        assert {(f["filter"], f["filterType"]) for f in filters} == {("keep-*", "WILDCARD"), (CACHE_TAG, "WILDCARD")}
        policy = stack.one("aws:ecr/lifecyclePolicy:LifecyclePolicy", f"{repository.name}-lifecycle")
        assert policy.inputs["policy"] == lifecycle_policy(30, releases)


def test_policy_pack_allows_exactly_the_registrys_mutable_tags() -> None:
    assert set(MUTABLE_TAG_FILTERS) == ALLOWED_MUTABLE_TAG_FILTERS


def test_keep_tag_names_a_known_consumer() -> None:
    assert keep_tag("prod") == "keep-prod"
    with pytest.raises(ValueError, match="consumers are"):
        keep_tag("canary")
