"""The LOTUS side (``lotus-ai`` 1.2.4, in its own virtual environment): the filter cascade and the map.

Settings, LOTUS's defaults unless said:

- ``LM(model="openai/<alias>", api_base=<server>)`` (temperature 0, its default), caches off
  (``lotus.settings.configure(enable_cache=False)``, its default).
- cascade: ``df.sem_filter(claim, cascade_args=CascadeArgs(), return_all=True, return_stats=True)``,
  the data set's claim (``corpora.py``: "{text} is a positive review", "{text} is spam"), with the large
  model as ``lm`` and the small one as ``helper_lm``. ``CascadeArgs()``
  is LOTUS's defaults: recall and precision targets 0.8, ``sampling_percentage`` 0.1,
  ``failure_probability`` 0.2, the helper model's logprobs as proxy scores.
- map: ``df.sem_map(instruction)`` on the small model, no length cap (LOTUS's default).
"""

from __future__ import annotations

import os
from typing import Any

from meter import Meter, side_main

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "local")

import lotus  # noqa: E402
import pandas as pd  # noqa: E402
from lotus.models import LM  # noqa: E402
from lotus.types import CascadeArgs  # noqa: E402


def lm(server: dict[str, Any]) -> Any:
    return LM(model=f"openai/{server['model']}", api_base=server["base_url"])


def cascade(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    servers = spec["servers"]
    lotus.settings.configure(lm=lm(servers["large"]), helper_lm=lm(servers["small"]), enable_cache=False)
    df = pd.DataFrame({"text": [r["text"] for r in spec["rows"]]})
    positive = spec["positive"]  # the label a passing row gets
    negative = next(label for label in spec["labels"] if label != positive)

    def run() -> tuple[Any, dict[str, Any]]:
        return df.sem_filter(spec["claim"], cascade_args=CascadeArgs(), return_all=True, return_stats=True)

    (out, stats), cost = meter.measure(run)
    predictions = [positive if bool(v) else negative for v in out["_filter"]]
    return [
        {
            "config": "sem_filter, CascadeArgs() defaults",
            "predictions": predictions,
            "rows_cost": cost,
            "rows_to_large": int(stats.get("filters_resolved_by_large_model", 0)),
            "stats": {k: v for k, v in stats.items() if k != "cascade_args"},
        }
    ]


def map_(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    lotus.settings.configure(lm=lm(spec["servers"]["small"]), enable_cache=False)
    df = pd.DataFrame({"text": [r["text"] for r in spec["rows"]]})
    out, cost = meter.measure(df.sem_map, spec["map_instruction"].replace("the text", "{text}"))
    return [{"config": "sem_map", "predictions": [str(v) for v in out["_map"]], "rows_cost": cost}]


if __name__ == "__main__":
    side_main({"cascade": cascade, "map": map_})
