"""Routing a model's requests among its ready versions: labels, the traffic split (a canary)
and the shadow, precomputed whenever a version's state or the config changes so that
choosing the version of a request is a lookup."""

from __future__ import annotations

import hashlib

from app.repository.versions import ServedVersion


class Router:
    """Where a model's requests go, precomputed from its ready versions and config.

    `pick(key)` chooses the version of a request that names neither a version nor a label:
    by the config's traffic weights when it has them (over the ready targets only: a canary
    that is still loading or failed gets no share), else the newest ready version. The
    split is deterministic: with a routing key (the `X-Routing-Key` header, e.g. a user id)
    the key's hash picks, so a caller stays on one version; without one, smooth weighted
    round robin (nginx's), so any run of requests matches the weights within one request.
    """

    __slots__ = ("_current", "default", "default_label", "labels", "shadow", "targets", "total")

    def __init__(
        self,
        default: ServedVersion | None,
        targets: list[tuple[ServedVersion, float, str]],
        labels: dict[str, int],
        shadow: ServedVersion | None,
    ) -> None:
        # One target: no split to compute; the hot path's case.
        self.default = default if not targets else (targets[0][0] if len(targets) == 1 else None)
        self.default_label = targets[0][2] if len(targets) == 1 else ""
        self.targets = targets if len(targets) > 1 else []
        self.total = sum(weight for _, weight, _ in self.targets)
        self.labels = labels
        self.shadow = shadow
        self._current = [0.0] * len(self.targets)

    def pick(self, key: str | None) -> tuple[ServedVersion | None, str]:
        """(the version to serve, the traffic key that chose it or "")."""
        if self.default is not None or not self.targets:
            return self.default, self.default_label
        if key is not None:
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            point = int.from_bytes(digest) / 2.0**64 * self.total
            for entry, weight, name in self.targets:
                point -= weight
                if point < 0:
                    return entry, name
            return self.targets[-1][0], self.targets[-1][2]
        best = 0
        for index, (_, weight, _) in enumerate(self.targets):
            self._current[index] += weight
            if self._current[index] > self._current[best]:
                best = index
        self._current[best] -= self.total
        entry, _, name = self.targets[best]
        return entry, name

    def continue_from(self, previous: Router) -> None:
        """Carry the round robin's position over from the router this one replaces when the
        split is the same (same versions, same weights): a rescan rebuilds every router, and
        restarting the round at each one would send nearly every request of a model with
        less than one request per scan to the first target."""
        same = len(self.targets) == len(previous.targets) and all(
            a is c and b == d
            for (a, b, _), (c, d, _) in zip(self.targets, previous.targets, strict=True)
        )
        if same:
            self._current = list(previous._current)
