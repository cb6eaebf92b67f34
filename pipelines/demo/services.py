"""Service records (活动签到记录) for the demo: one row per attendance, as social workers keep them.

The template (see docs/services.md) is what the report's outputs section reads: activities held
(distinct date + activity), attendances (rows) and unique people served (distinct hashed phone).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import Config, Wave
from pipelines.demo.population import GIVEN, SURNAMES, _stable

SERVICE_COLUMNS = ["活动日期", "服务线", "活动名称", "签到人姓名", "联系电话", "人员类别", "是否困境儿童"]
ACTIVITY_NAMES = {
    "growth_space": ["童趣广场游园会", "安全游戏空间共建", "小小设计师：我的游乐场"],
    "family_education": ["亲子沟通工作坊", "家庭共读夜", "好家训分享会"],
    "mental_health": ["情绪小管家", "防溺水安全课", "生命教育绘本课"],
    "rights": ["困境儿童探访", "爱心陪伴计划", "微心愿认领"],
    "participation": ["童心议事会", "小小志愿者", "社区小记者"],
}
PERSON_TYPES = ["儿童", "家长", "居民", "志愿者"]


def write_service_records(root: Path, config: Config, wave: Wave, seed: int, scale: int = 1) -> Path | None:
    if wave.kind == "baseline":
        return None  # services start with the service year
    rng = np.random.default_rng([seed, _stable(wave.id), 5])
    quarters = sum(1 for w in config.waves if w.kind == "quarterly")
    rows = []
    days = max(1, (wave.end - wave.start).days)
    for line in config.service_lines:
        target_acts = line.outputs.get("activities", 8)
        target_att = line.outputs.get("attendances", 200)
        target_people = line.outputs.get("people", 80)
        n_acts = max(1, int(round(target_acts / quarters * rng.uniform(0.8, 1.3))))
        pool = max(3, int(target_people * 0.9)) * scale
        names = ACTIVITY_NAMES.get(line.id, [line.name_zh])
        for a in range(n_acts):
            date = wave.start + dt.timedelta(days=int(rng.integers(0, days)))
            size = max(2, int(rng.poisson(target_att / target_acts)))
            people = rng.choice(pool, size=min(size, pool), replace=False)
            title = names[a % len(names)]
            for person in people:
                rows.append({
                    "活动日期": date.strftime("%Y-%m-%d"), "服务线": line.name_zh, "活动名称": title,
                    "签到人姓名": SURNAMES[(person * 7 + _stable(line.id)) % len(SURNAMES)]
                    + GIVEN[(person * 3) % len(GIVEN)] + GIVEN[(person * 5 + 1) % len(GIVEN)],
                    "联系电话": f"15{_stable(line.id) % 10}{person:08d}",
                    "人员类别": PERSON_TYPES[int(person) % len(PERSON_TYPES)] if not line.vulnerable else "儿童",
                    "是否困境儿童": "是" if line.vulnerable else "否",
                })
    frame = pd.DataFrame(rows, columns=SERVICE_COLUMNS).sort_values(["活动日期", "服务线", "活动名称"], kind="stable")
    folder = root / "data_raw" / wave.id / "services"
    folder.mkdir(parents=True, exist_ok=True)
    if scale >= 10:
        path = folder / f"服务记录_{wave.id}.csv"
        frame.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")
        return path
    path = folder / f"服务记录_{wave.id}.xlsx"
    with pd.ExcelWriter(path, engine="xlsxwriter") as writer:
        frame.to_excel(writer, sheet_name="签到记录", index=False)
        writer.book.set_properties({"created": dt.datetime(2024, 6, 1)})
    return path
