"""What a review costs: a small per-model price table (USD per 1M tokens), overridable in config.

DeepSeek bills cache hits, cache misses and output (reasoning included) separately, and halves
every price off-peak. The table holds peak prices so an estimate is an upper bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..settings.model import PRICE_KEYS

__all__ = ["PRICES", "PRICE_KEYS", "Estimate", "Price", "cost", "estimate", "price_for"]


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    cache_hit: float
    cache_miss: float
    output: float


# api-docs.deepseek.com/quick_start/pricing, November 2026, peak hours (off-peak is half).
PRICES: dict[str, Price] = {
    "deepseek-flash": Price(cache_hit=0.006, cache_miss=0.30, output=1.20),
    "deepseek-v4-pro": Price(cache_hit=0.044, cache_miss=1.32, output=3.96),
    # Retired ids still answered by V4.1 Flash and billed as Flash.
    "deepseek-v4-flash": Price(cache_hit=0.006, cache_miss=0.30, output=1.20),
}


def price_for(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> Price | None:
    """The price of ``model``: config overrides first, then the table; None when unknown."""
    base = PRICES.get(model)
    custom = (overrides or {}).get(model)
    if custom is None:
        return base
    unknown = set(custom) - set(PRICE_KEYS)
    if unknown:
        raise ConfigError(
            f"prices.{model}: unknown key {sorted(unknown)[0]!r}", f"known keys: {', '.join(PRICE_KEYS)}"
        )
    values = {k: getattr(base, k) for k in PRICE_KEYS} if base else {}
    values.update({k: float(v) for k, v in custom.items()})
    missing = [k for k in PRICE_KEYS if k not in values]
    if missing:
        raise ConfigError(f"prices.{model}: missing {', '.join(missing)} (USD per 1M tokens)")
    if any(v < 0 for v in values.values()):
        raise ConfigError(f"prices.{model}: prices must not be negative")
    return Price(**values)


def cost(
    price: Price,
    *,
    cache_hit_tokens: int = 0,
    cache_miss_tokens: int = 0,
    output_tokens: int = 0,
) -> float:
    """USD for the given token counts."""
    total = (
        cache_hit_tokens * price.cache_hit
        + cache_miss_tokens * price.cache_miss
        + output_tokens * price.output
    )
    return round(total / 1_000_000, 6)


@dataclass(frozen=True)
class Estimate:
    """A dry run's cost range: the prompt all missed or all hit the cache, plus the output."""

    prompt_tokens: int
    max_output_tokens: int
    input_cache_miss_usd: float
    input_cache_hit_usd: float
    output_max_usd: float

    @property
    def max_usd(self) -> float:
        return round(self.input_cache_miss_usd + self.output_max_usd, 6)


def estimate(price: Price, prompt_tokens: int, max_output_tokens: int) -> Estimate:
    return Estimate(
        prompt_tokens=prompt_tokens,
        max_output_tokens=max_output_tokens,
        input_cache_miss_usd=cost(price, cache_miss_tokens=prompt_tokens),
        input_cache_hit_usd=cost(price, cache_hit_tokens=prompt_tokens),
        output_max_usd=cost(price, output_tokens=max_output_tokens),
    )
