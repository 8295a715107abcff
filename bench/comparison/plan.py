"""Which scenarios a round runs, in what order, at which scale (full, or ``--quick``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from ackchat.settings import BenchSettings
from comparison.servers import ACKCHAT, EARLIER, HTTP, REDIS

# Run after the cold start to warm the server up; not recorded.
WARM_UP = "warm-up"
# The variants of ackchat that run the hot paths only (plain ACK and connect/exit).
HOT_ONLY = (EARLIER, HTTP)


@dataclass(frozen=True)
class Scale:
    """How many rounds, how long and how big: the full default or ``--quick``."""

    rounds: int
    warmup: float
    duration: float
    idle: int
    cache: int
    messages: int
    cold: float
    receivers: int


FULL = Scale(
    rounds=3,
    warmup=1.0,
    duration=5.0,
    idle=10000,
    cache=10000,
    messages=1_000_000,
    cold=5.0,
    receivers=1000,
)
QUICK = Scale(
    rounds=1,
    warmup=0.3,
    duration=1.0,
    idle=1000,
    cache=1000,
    messages=100_000,
    cold=1.0,
    receivers=200,
)


def choose_scale(
    quick: bool, rounds: int | None, duration: float | None, warmup: float | None
) -> Scale:
    """The full or the quick scale, with what the command line gives instead."""
    scale = QUICK if quick else FULL
    return replace(
        scale,
        rounds=scale.rounds if rounds is None else rounds,
        duration=scale.duration if duration is None else duration,
        warmup=scale.warmup if warmup is None else warmup,
    )


@dataclass(frozen=True)
class Scenario:
    """One run of the load generator against each server it applies to."""

    key: str
    options: BenchSettings
    # The servers it runs against, besides the hot-path variants (all when empty).
    only: tuple[str, ...] = ()
    # Whether the hot-path variants (HOT_ONLY) run it too: plain ACK and connect/exit.
    hot: bool = False

    def applies_to(self, server: str) -> bool:
        """Whether this scenario runs against ``server``."""
        if server in HOT_ONLY:
            return self.hot
        return not self.only or server in self.only

    @property
    def group(self) -> str:
        """The first word of its key, which ``--scenarios`` may name: echo, fanout..."""
        return self.key.split()[0]


# Room fan-out, against ackchat's rooms and redis-server's PUBLISH with the same load.
FANOUT_SERVERS = (ACKCHAT, REDIS)
FANOUT_WINDOW = 64
FANOUT_MODERATE_RATE = 1000.0


def fanout_scenarios(timed: BenchSettings, scale: Scale) -> list[Scenario]:
    """One sender, ``scale.receivers`` members (and 100, and 10), 64 messages in flight;
    then one in flight (pure latency) and a moderate rate of 1,000 messages a second."""
    fanout = replace(
        timed,
        scenario="fanout",
        connections=scale.receivers,
        pipeline=FANOUT_WINDOW,
        workers=2,
    )
    return [
        Scenario("fanout", fanout, FANOUT_SERVERS),
        Scenario("fanout 100", replace(fanout, connections=100), FANOUT_SERVERS),
        Scenario("fanout 10", replace(fanout, connections=10, workers=1), FANOUT_SERVERS),
        Scenario("fanout window 1", replace(fanout, pipeline=1), FANOUT_SERVERS),
        Scenario("fanout moderate", replace(fanout, rate=FANOUT_MODERATE_RATE), FANOUT_SERVERS),
    ]


def scenarios(scale: Scale) -> list[Scenario]:
    """The scenarios of one round, in the order they run after a server starts."""
    timed = BenchSettings(connections=50, warmup=scale.warmup, duration=scale.duration)
    echo = replace(timed, scenario="echo")
    return [
        Scenario("cold", replace(echo, connections=50, warmup=0.0, duration=scale.cold)),
        Scenario(WARM_UP, replace(echo, connections=50, pipeline=4, warmup=0.0), hot=True),
        Scenario("echo 3/1", replace(echo, connections=3), hot=True),
        Scenario("echo 50/1", replace(echo, connections=50), hot=True),
        Scenario("echo 50/16", replace(echo, connections=50, pipeline=16), hot=True),
        Scenario("idle", replace(timed, scenario="idle", connections=scale.idle, duration=2.0)),
        Scenario("churn 50", replace(timed, scenario="connect", connections=50), hot=True),
        Scenario(
            "status",
            replace(timed, scenario="status", connections=10, cache_fill=scale.cache),
            (ACKCHAT,),
        ),
        *fanout_scenarios(timed, scale),
        # One client, two lines in flight: a steady stream, to see whether memory grows.
        Scenario(
            "messages",
            replace(
                echo,
                connections=1,
                pipeline=2,
                warmup=0.0,
                duration=120.0,
                requests=scale.messages,
            ),
            (ACKCHAT,),
        ),
    ]


def chosen(plan: Sequence[Scenario], names: Collection[str]) -> list[Scenario]:
    """The scenarios of ``plan`` named by key or group (``echo``, ``echo 50/1``), and the
    warm-up before them; the whole plan when ``names`` is empty."""
    if not names:
        return list(plan)
    return [
        scenario
        for scenario in plan
        if scenario.key == WARM_UP or scenario.key in names or scenario.group in names
    ]


def scenario_names(plan: Sequence[Scenario]) -> list[str]:
    """What ``--scenarios`` accepts: every group, then every key that is not one."""
    named = [scenario for scenario in plan if scenario.key != WARM_UP]
    groups = dict.fromkeys(scenario.group for scenario in named)
    return [*groups, *(scenario.key for scenario in named if scenario.key not in groups)]
