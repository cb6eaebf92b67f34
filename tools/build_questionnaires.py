"""Build the four questionnaire workbooks (XLSForm + pipeline columns) in config/questionnaires/.

This file is the readable source of the questionnaires' content. Running

    .venv/bin/python tools/build_questionnaires.py

rewrites config/questionnaires/{parent,child,community,activity}.xlsx. The format is described in
docs/codebook.md. Output is deterministic: the same script gives the same cells (and the same bytes:
document properties and zip timestamps are fixed to 2024-06-01).

How the content is written down
-------------------------------
* CHOICES holds the shared option lists: list name -> [(中文, English), ...]; codes are 1..k in order.
  A third tuple element adds choice columns, e.g. {"score": 0} or {"other": "yes"}.
* Each questionnaire is a list of items built with the small helpers below:
    q(...)       one question (one answer column); `options=[...]` gives it its own option list
                 (named after the question: used for quiz items);
    matrix(...)  a Likert grid: begin_group (table-list) + one select_one row per statement + end_group;
    note(...)    an unnumbered text block.
  Question numbers (qnum) are assigned in order; matrix rows share their matrix's number.
* `measure` and `required` get defaults from the question type and option list (see _defaults).
* SCALES holds the scales sheet rows; each workbook gets the scales its items use.

Item wording is the project's own (in the spirit of the published instruments, never their text),
except WHO-5, which is public domain and used in its common Chinese wording.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.writer.excel import ExcelWriter

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "config" / "questionnaires"
FIXED_TIME = dt.datetime(2024, 6, 1, 0, 0, 0)
VERSION = "2024.06"
ZH = "label::中文 (zh)"
EN = "label::English (en)"

SURVEY_COLUMNS = [
    "type", "name", ZH, EN, "qnum", "required", "relevant", "min", "max", "measure",
    "indicator", "service_line", "scale", "subscale", "reverse", "correct", "personal", "role",
    "need", "satisfaction", "appearance",
]
CHOICE_COLUMNS = ["list_name", "name", ZH, EN, "score", "other"]
SCALE_COLUMNS = ["scale", ZH, EN, "method", "min_answered", "multiplier", "low_cut", "mcid"]
SETTINGS_COLUMNS = ["form_title", "form_id", "version", "default_language", "population",
                    "min_age", "max_age"]

# ============================================================================ shared option lists

CHOICES: dict[str, list[tuple]] = {
    "yesno": [("是", "Yes"), ("否", "No")],
    "gender": [("男", "Male"), ("女", "Female")],
    "hukou": [("本地户籍", "Locally registered (local hukou)"),
              ("非本地户籍（流动人口）", "Not locally registered (floating population)")],
    "relation": [("父亲", "Father"), ("母亲", "Mother"),
                 ("祖父母或外祖父母", "Grandparent"), ("其他监护人", "Other guardian")],
    "education": [("小学及以下", "Primary school or below"), ("初中", "Junior secondary"),
                  ("高中（含中专、职高）", "Senior secondary (incl. vocational)"),
                  ("大专", "Junior college"), ("本科及以上", "Bachelor's degree or above")],
    "years_lived": [("不满1年", "Less than 1 year"), ("1年至不满3年", "1 to under 3 years"),
                    ("3年至不满5年", "3 to under 5 years"), ("5年至不满10年", "5 to under 10 years"),
                    ("10年及以上", "10 years or more")],
    "employment": [("在职（单位就业）", "Employed"), ("个体经营或灵活就业", "Self-employed / gig work"),
                   ("离退休", "Retired"), ("全职照顾家庭", "Full-time homemaker or carer"),
                   ("在校学生", "Student"), ("暂无工作", "Not working")],
    "grade": [("小学三年级及以下", "Primary grade 3 or below"), ("小学四至六年级", "Primary grades 4–6"),
              ("初中", "Junior secondary"), ("高中（含中职）", "Senior secondary (incl. vocational)"),
              ("目前没有上学", "Not in school at present")],
    "info_channel": [("社区或小区微信群", "Community / compound WeChat group"),
                     ("社区微信公众号", "Community WeChat official account"),
                     ("小区公告栏、电子屏", "Notice board or screen in the compound"),
                     ("楼长、网格员告知", "Building head or grid worker"),
                     ("邻居、亲友告知", "Neighbours, relatives or friends"),
                     ("很少关注社区信息", "I rarely follow community news")],
    "after_school": [("父母", "Parents"), ("祖父母或外祖父母", "Grandparents"),
                     ("托管班或培训机构", "After-school care or a training centre"),
                     ("孩子自己在家", "The child stays home alone"),
                     ("其他亲友或保姆", "Other relatives, friends or a nanny")],
    "after_school_place": [("在家里", "At home"), ("在学校（课后服务）", "At school (after-school service)"),
                           ("托管班或培训班", "At an after-school care or tutoring centre"),
                           ("社区里（居民之家、广场等）", "In the community (residents' hall, plaza, etc.)"),
                           ("亲戚家或其他地方", "At a relative's home or somewhere else")],
    "freq_use": [("从未去过", "Never"), ("偶尔（每月不到1次）", "Occasionally (less than once a month)"),
                 ("每月1–3次", "1–3 times a month"), ("每周1次及以上", "Once a week or more")],
    "reading_freq": [("0次", "None"), ("1次", "Once"), ("2–3次", "2–3 times"), ("4次及以上", "4 times or more")],
    "daily_time": [("不到半小时", "Less than half an hour"), ("半小时至1小时", "Half an hour to 1 hour"),
                   ("1至2小时", "1 to 2 hours"), ("2小时以上", "More than 2 hours")],
    "agree5": [("非常不同意", "Strongly disagree"), ("不同意", "Disagree"), ("一般", "Neutral"),
               ("同意", "Agree"), ("非常同意", "Strongly agree")],
    "satisfaction": [("非常不满意", "Very dissatisfied"), ("不满意", "Dissatisfied"), ("一般", "Neutral"),
                     ("满意", "Satisfied"), ("非常满意", "Very satisfied")],
    "friendly5": [("非常不友好", "Not at all child-friendly"), ("不太友好", "Not very child-friendly"),
                  ("一般", "So-so"), ("比较友好", "Fairly child-friendly"),
                  ("非常友好", "Very child-friendly")],
    "willing5": [("非常不愿意", "Very unwilling"), ("不太愿意", "Rather unwilling"), ("说不清", "Not sure"),
                 ("比较愿意", "Rather willing"), ("非常愿意", "Very willing")],
    "willing3": [("愿意", "Yes, willing"), ("看情况", "It depends"), ("不愿意", "Not willing")],
    "support5": [("非常不赞成", "Strongly oppose"), ("不太赞成", "Somewhat oppose"), ("无所谓", "Indifferent"),
                 ("比较赞成", "Somewhat support"), ("非常赞成", "Strongly support")],
    "enough5": [("非常不足", "Far too little"), ("比较不足", "Too little"), ("一般", "About right"),
                ("比较充足", "Fairly ample"), ("非常充足", "Ample")],
    "neighbour_contact": [("几乎不来往", "Hardly any contact"), ("见面打个招呼", "We greet each other"),
                          ("偶尔互相帮忙", "We help each other now and then"),
                          ("经常来往、互相照应", "Frequent contact, we look out for each other")],
    "project_aware": [("很了解", "I know it well"), ("听说过，但不太了解", "Heard of it, but know little"),
                      ("没听说过", "Never heard of it")],
    "idea_adopted": [("采纳过", "Yes, it was taken up"), ("没有被采纳", "No, it was not taken up"),
                     ("没提过建议或不清楚", "I made no suggestion / not sure")],
    # WHO-5: shown from 从未 to 所有时间, codes 1..6, scores 0..5 (问卷星 按分数 gives the score)
    "who5_freq": [("从未", "At no time", {"score": 0}),
                  ("有些时候", "Some of the time", {"score": 1}),
                  ("少于一半的时间", "Less than half of the time", {"score": 2}),
                  ("超过一半的时间", "More than half of the time", {"score": 3}),
                  ("大部分时间", "Most of the time", {"score": 4}),
                  ("所有时间", "All of the time", {"score": 5})],
    # needs from the 2024 needs survey; the ranking uses six of them
    "needs": [("心理健康活动", "Mental-health activities"), ("生命教育", "Life education"),
              ("安全教育", "Safety education"), ("课后托管/四点半课堂", "After-school care (4:30 class)"),
              ("亲子活动", "Parent–child activities"), ("家庭教育讲座", "Family-education talks"),
              ("户外安全游戏空间", "Safe outdoor play space"), ("儿童阅读空间", "Children's reading space"),
              ("志愿服务机会", "Volunteering opportunities"),
              ("儿童参与社区议事", "Children taking part in community decisions"),
              ("困境儿童关爱", "Care for children in difficulty"),
              ("其他（请注明）", "Other (please specify)", {"other": "yes"})],
    "need_rank": [("心理健康活动", "Mental-health activities"), ("安全教育", "Safety education"),
                  ("课后托管/四点半课堂", "After-school care (4:30 class)"), ("亲子活动", "Parent–child activities"),
                  ("户外安全游戏空间", "Safe outdoor play space"),
                  ("儿童参与社区议事", "Children taking part in community decisions")],
    "services_used": [("儿童议事会", "Children's council"), ("亲子志愿服务", "Parent–child volunteering"),
                      ("家庭教育讲座或亲子沟通工作坊", "Family-education talk or parent–child communication workshop"),
                      ("儿童安全或心理健康教育活动", "Children's safety or mental-health education"),
                      ("儿童图书馆阅读活动", "Reading activities at the children's library"),
                      ("其他社区儿童活动", "Other community activities for children")],
    "child_activities": [("儿童议事会", "Children's council"), ("社区小志愿者活动", "Young volunteer activities"),
                         ("安全教育或心理健康活动", "Safety or mental-health activities"),
                         ("亲子活动", "Parent–child activities"), ("其他社区活动", "Other community activities")],
    "gov_known": [("小区信箱", "Compound mailbox"), ("联席会议", "Joint meeting"),
                  ("志愿者队伍", "Volunteer team"), ("共享驿站", "Shared station"),
                  ("议事会客厅", "Deliberation lounge (议事会客厅)"), ("以上都不知道", "None of these")],
    "gov_used": [("小区信箱", "Compound mailbox"), ("联席会议", "Joint meeting"),
                 ("志愿者队伍", "Volunteer team"), ("共享驿站", "Shared station"),
                 ("议事会客厅", "Deliberation lounge (议事会客厅)"), ("以上都没有用过", "Used none of these")],
    "hazards": [("小区内车速过快、人车混行", "Fast traffic / cars and pedestrians mixed in the compound"),
                ("车辆乱停放、占用通道", "Parked vehicles blocking paths"),
                ("游乐设施老旧或损坏", "Old or broken play equipment"), ("高空抛物", "Objects thrown from height"),
                ("电动车违规停放充电", "E-bikes parked or charged unsafely"),
                ("周边工地、水域等危险区域", "Nearby building sites, water or other danger spots"),
                ("以上都没有", "None of these")],
    "activity_id": [("亲子沟通工作坊第1期", "Parent–child communication workshop, session 1"),
                    ("亲子沟通工作坊第2期", "Parent–child communication workshop, session 2"),
                    ("儿童安全小卫士", "Young safety guards"), ("童心议事会", "Children's council (童心议事会)")],
    "phase": [("活动前", "Before the activity (pre-test)"), ("活动后", "After the activity (post-test)")],
    "recommend": [("愿意", "Yes"), ("不确定", "Not sure"), ("不愿意", "No")],
}

# measure of a select_one, by option list (anything not listed here is nominal)
ORDINAL_LISTS = {"education", "years_lived", "freq_use", "reading_freq", "daily_time", "agree5",
                 "satisfaction", "friendly5", "willing5", "willing3", "support5", "enough5",
                 "neighbour_contact", "project_aware", "who5_freq", "recommend"}
BINARY_LISTS = {"yesno"}

# ============================================================================ scales sheet rows

SCALES: dict[str, dict] = {
    "safe_play": dict(zh="儿童安全游玩评价", en="Safe places to play (child rating)",
                      method="mean", min_answered=0.8),
    "traffic_safety": dict(zh="小区及上学路上交通安全评价", en="Traffic safety in the compound and on the school route",
                           method="mean", min_answered=0.75),
    "pcc": dict(zh="亲子沟通（家长卷，项目自编：开放沟通/沟通问题）",
                en="Parent–child communication, parent form (project items: openness / problems)",
                method="mean", min_answered=0.8),
    "pcc_child": dict(zh="亲子沟通（儿童卷，项目自编：开放沟通/沟通问题）",
                      en="Parent–child communication, child form (project items: openness / problems)",
                      method="mean", min_answered=0.8),
    "confidence": dict(zh="家庭教育信心", en="Confidence in parenting and family education",
                       method="mean", min_answered=0.8),
    "who5": dict(zh="WHO-5幸福感指数（原始分0–25，×4为0–100；原始分<13为幸福感较低；变化10分有意义）",
                 en="WHO-5 Well-Being Index (raw 0–25, ×4 = 0–100; raw < 13 = poor wellbeing; "
                    "10 points on 0–100 = meaningful change)",
                 method="sum", min_answered=0.8, multiplier=4, low_cut=13, mcid=10),
    "safety_quiz": dict(zh="安全知识测验（答对比例）", en="Safety knowledge quiz (share correct)",
                        method="mean", min_answered=0.8),
    "life_quiz": dict(zh="生命教育知识测验（答对比例）", en="Life-education quiz (share correct)",
                      method="mean", min_answered=0.75),
    "prosocial": dict(zh="亲社会态度与责任感（项目自编）", en="Prosocial attitudes and responsibility (project items)",
                      method="mean", min_answered=0.8),
    "voice": dict(zh="儿童意见受重视感", en="Children's sense that their views count",
                  method="mean", min_answered=0.75),
    "bscs": dict(zh="社区归属感（项目自编，参照简版社区感量表的四个维度）",
                 en="Sense of community (project items on the four Brief Sense of Community dimensions)",
                 method="mean", min_answered=0.75),
    "workshop": dict(zh="亲子沟通工作坊前后测", en="Parent–child communication workshop pre/post scale",
                     method="mean", min_answered=0.8),
}

# indicator -> service line (as in config/project.toml)
LINE = {
    "safe_play": "growth_space", "traffic_safety": "growth_space", "space_use": "growth_space",
    "parent_child_comm": "family_education", "family_reading": "family_education",
    "parenting_confidence": "family_education",
    "wellbeing": "mental_health", "safety_knowledge": "mental_health", "life_education": "mental_health",
    "mh_service_awareness": "mental_health",
    "prosocial": "rights", "help_willingness": "rights",
    "voice_counts": "participation", "participation": "participation",
    "sense_of_community": "participation", "governance_awareness": "participation",
}

# ============================================================================ helpers


def q(type_: str, name: str, zh: str, en: str, **cols) -> dict:
    """One question. Extra keyword arguments are survey columns (relevant=, min=, indicator=, ...);
    `options=[(zh, en), ...]` creates a list named after the question."""
    item = {"type": type_, "name": name, ZH: zh, EN: en, **cols}
    if "indicator" in cols and "service_line" not in cols and cols["indicator"] in LINE:
        item["service_line"] = LINE[cols["indicator"]]
    return item


def one(list_name: str, name: str, zh: str, en: str, **cols) -> dict:
    return q(f"select_one {list_name}", name, zh, en, **cols)


def many(list_name: str, name: str, zh: str, en: str, **cols) -> dict:
    return q(f"select_multiple {list_name}", name, zh, en, **cols)


def quiz(name: str, zh: str, en: str, options: list[tuple], correct: int, indicator: str, scale: str) -> dict:
    return q(f"select_one {name}", name, zh, en, options=options, correct=correct,
             indicator=indicator, scale=scale, measure="binary")


def note(name: str, zh: str, en: str) -> dict:
    return {"type": "note", "name": name, ZH: zh, EN: en}


def matrix(name: str, zh: str, en: str, list_name: str, rows: list[tuple], **common) -> dict:
    """A Likert grid. rows: (name, zh, en) or (name, zh, en, {extra columns for this row})."""
    return {"matrix": True, "name": name, ZH: zh, EN: en, "list": list_name, "rows": rows,
            "common": common}


def satisfaction_grid(zh: str, en: str, rows: list[tuple]) -> dict:
    """Satisfaction matrix: rows are (name, service_line, zh, en)."""
    return matrix("satisfaction_grid", zh, en, "satisfaction",
                  [(n, z, e, {"service_line": line}) for n, line, z, e in rows],
                  indicator="satisfaction", satisfaction="yes")


def _defaults(row: dict) -> dict:
    """Fill `required` and `measure` from the question type and option list."""
    kind, _, list_name = row["type"].partition(" ")
    if kind in ("note", "begin_group", "end_group"):
        return row
    row.setdefault("required", "no" if kind == "text" else "yes")
    if "measure" not in row:
        if kind in ("integer", "decimal"):
            row["measure"] = "interval"
        elif kind == "select_multiple":
            row["measure"] = "binary"          # each option becomes a 0/1 column
        elif kind == "rank":
            row["measure"] = "ordinal"
        elif kind == "select_one":
            row["measure"] = ("binary" if list_name in BINARY_LISTS
                              else "ordinal" if list_name in ORDINAL_LISTS else "nominal")
        else:
            row["measure"] = "nominal"
    return row


def flatten(items: list[dict]) -> tuple[list[dict], dict[str, list[tuple]]]:
    """Expand matrices, number the questions, collect question-specific option lists."""
    rows: list[dict] = []
    own_lists: dict[str, list[tuple]] = {}
    qnum = 0
    for item in items:
        if item.get("matrix"):
            qnum += 1
            rows.append({"type": "begin_group", "name": item["name"], ZH: item[ZH], EN: item[EN],
                         "qnum": qnum, "appearance": "table-list"})
            for r in item["rows"]:
                name, zh, en, extra = (*r, {}) if len(r) == 3 else r
                row = q(f"select_one {item['list']}", name, zh, en, **{**item["common"], **extra})
                if "measure" not in row:
                    row["measure"] = "ordinal"          # matrix Likert rows
                row["qnum"] = qnum
                rows.append(_defaults(row))
            rows.append({"type": "end_group"})
            continue
        row = dict(item)
        if "options" in row:
            own_lists[row["name"]] = row.pop("options")
        if row["type"] != "note":
            qnum += 1
            row["qnum"] = qnum
        rows.append(_defaults(row))
    return rows, own_lists


# common blocks ---------------------------------------------------------------------------------

def compound_q(zh: str, en: str) -> dict:
    return q("text", "compound", zh, en, role="compound", required="yes")


def personal_block(who: str) -> list[dict]:
    """Contact fields near the end: only for follow-up, removed at ingest."""
    if who == "child":
        return [
            note("personal_note",
                 "以下信息仅用于项目后续回访（如活动通知、下次调查时联系），不会公开，也不会出现在任何统计结果中。"
                 "可以不填。",
                 "The following details are only for follow-up (activity notices, contacting you for the next "
                 "survey). They are never published or shown in any results. You may leave them blank."),
            q("text", "resp_name", "你的名字", "Your name", personal="yes", role="link_name"),
            q("text", "phone", "爸爸或妈妈的手机号码", "Your parent's mobile number",
              personal="yes", role="link_phone"),
            q("text", "room", "你家的楼栋门牌号（如：3号楼502室）", "Your building and flat number (e.g. Bldg 3, Rm 502)",
              personal="yes", role="link_room"),
        ]
    return [
        note("personal_note",
             "以下信息仅用于项目后续回访（如活动通知、下次调查时联系您），将严格保密，不会出现在任何统计结果中。"
             "您可以选择不填。",
             "The following details are only for follow-up (activity notices, contacting you for the next survey). "
             "They are kept confidential and never appear in any results. You may leave them blank."),
        q("text", "resp_name", "您的姓名或称呼", "Your name (or how we should address you)",
          personal="yes", role="link_name"),
        q("text", "phone", "您的手机号码", "Your mobile number", personal="yes", role="link_phone"),
        q("text", "room", "您家的楼栋门牌号（如：3号楼502室）", "Your building and flat number (e.g. Bldg 3, Rm 502)",
          personal="yes", role="link_room"),
    ]


def needs_block(zh_needs: str, en_needs: str, zh_rank: str, en_rank: str) -> list[dict]:
    return [
        many("needs", "needs", zh_needs, en_needs, need="yes"),
        q("rank need_rank", "need_rank", zh_rank, en_rank, need="yes"),
    ]


OPEN = "openness"
PROB = "problems"
REV = {"subscale": PROB, "reverse": "yes"}

# ============================================================================ parent questionnaire

PARENT = [
    note("intro",
         "尊敬的家长：您好！为了解金尚社区儿童和家庭的需求，更好地建设儿童友好社区，我们开展本次调查。"
         "问卷约需10分钟，答案没有对错之分，结果仅用于统计分析，请根据实际情况填写。感谢您的支持！",
         "Dear parent: to understand the needs of children and families in Jinshang Community and build a more "
         "child-friendly community, we are running this survey. It takes about 10 minutes; there are no right or "
         "wrong answers, and results are used only for statistics. Thank you for your support!"),
    compound_q("您居住在金尚社区的哪个小区？（请填写小区名称）",
               "Which compound in Jinshang Community do you live in? (please write its name)"),
    one("relation", "relation", "您是孩子的什么人？", "What is your relationship to the child?",
        role="respondent_role"),
    one("gender", "gender", "您的性别", "Your gender", role="gender"),
    one("education", "education", "您的文化程度", "Your highest level of education"),
    one("hukou", "hukou", "您家的户籍情况", "Your household's registration (hukou) status", role="hukou"),
    one("years_lived", "years_lived", "您在金尚社区居住了多长时间？", "How long have you lived in Jinshang Community?"),
    q("integer", "n_children", "您家中有几个18岁以下的孩子？", "How many children under 18 live in your household?",
      min=1, max=6),
    q("integer", "child_age",
      "以下问题请围绕您的一个孩子回答（如有多个18岁以下的孩子，请以年龄最小的那个孩子为准）。这个孩子今年几周岁？",
      "Please answer the following questions about one child (if you have several children under 18, the "
      "youngest). How old is this child (full years)?",
      min=0, max=17, role="child_age"),
    one("gender", "child_gender", "这个孩子的性别", "The child's gender"),
    one("after_school", "after_school", "孩子放学后主要由谁照看？", "Who mainly looks after the child after school?",
        relevant="${child_age} >= 6"),
    one("info_channel", "info_channel", "您平时主要通过什么渠道了解社区信息？",
        "What is your main channel for community news?"),
    one("freq_use", "use_plaza", "最近3个月，您和孩子去法治文化广场活动的频率是？",
        "In the last 3 months, how often did you and the child go to the Rule-of-Law Culture Plaza?",
        indicator="space_use"),
    one("freq_use", "use_hall", "最近3个月，您和孩子使用居民之家（儿童图书馆、母婴室、科普工作室等）的频率是？",
        "In the last 3 months, how often did you and the child use the residents' hall (children's library, "
        "mother-and-baby room, science studio, etc.)?",
        indicator="space_use"),
    matrix("traffic_safety_grid",
           "您是否同意以下关于小区及孩子上学路上交通安全的说法？",
           "How far do you agree with these statements about traffic safety in the compound and on the way to school?",
           "agree5", [
               ("traffic_1", "小区内人车分流做得好，孩子在小区里走动比较安全",
                "Cars and pedestrians are well separated; children can walk around the compound safely"),
               ("traffic_2", "小区内车辆行驶速度较慢，不会对孩子造成危险",
                "Vehicles drive slowly in the compound and do not endanger children"),
               ("traffic_3", "孩子上下学路上的交通秩序良好", "Traffic on the child's way to and from school is orderly"),
               ("traffic_4", "学校周边的人行横道、红绿灯、护学岗等设施完善",
                "Crossings, traffic lights and school-gate guards near the school are adequate"),
           ], indicator="traffic_safety", scale="traffic_safety"),
    one("daily_time", "daily_time", "平均每天，您陪伴孩子（聊天、游戏、阅读、运动等，不含辅导作业）的时间大约是？",
        "On an average day, how long do you spend with the child (talking, playing, reading, sport; "
        "not counting homework help)?"),
    one("reading_freq", "family_reading",
        "最近一个月，您家平均每周开展几次亲子共读或家风家训分享？",
        "In the last month, how many times a week on average did your family read together or share family "
        "values / family rules (家训)?",
        indicator="family_reading"),
    matrix("pcc_grid", "以下说法与您和孩子之间的沟通情况相符吗？请选择您的同意程度。",
           "Do these statements describe how you and the child communicate? Please choose how far you agree.",
           "agree5", [
               ("pcc_1", "孩子遇到烦心事时，会主动来找我说", "When something is bothering my child, they come to me on their own",
                {"subscale": OPEN}),
               ("pcc_2", "我们说不了几句话就容易争吵起来", "Our conversations easily turn into arguments", REV),
               ("pcc_3", "孩子说话时，我能耐心听他/她说完", "When my child talks, I listen patiently until they finish",
                {"subscale": OPEN}),
               ("pcc_4", "有些事孩子宁愿憋在心里，也不愿意告诉我", "There are things my child would rather keep to themselves than tell me",
                REV),
               ("pcc_5", "孩子愿意和我聊学校里、朋友间的事情", "My child is happy to talk with me about school and friends",
                {"subscale": OPEN}),
               ("pcc_6", "我生气的时候，会对孩子说出伤人的话", "When I am angry I say hurtful things to my child", REV),
               ("pcc_7", "我们意见不同时，能心平气和地商量", "When we disagree, we can talk it through calmly",
                {"subscale": OPEN}),
               ("pcc_8", "孩子常觉得我不理解他/她", "My child often feels I do not understand them", REV),
               ("pcc_9", "我会坦诚地把自己的感受告诉孩子", "I tell my child honestly how I feel", {"subscale": OPEN}),
               ("pcc_10", "我很难让孩子明白我的想法", "I find it hard to get my child to understand my point of view", REV),
           ], indicator="parent_child_comm", scale="pcc"),
    matrix("confidence_grid", "在家庭教育方面，您是否同意以下说法？",
           "About bringing up your child, how far do you agree with these statements?",
           "agree5", [
               ("conf_1", "我知道如何引导孩子管理自己的情绪", "I know how to help my child manage their emotions"),
               ("conf_2", "孩子出现不良行为时，我有合适的办法应对", "When my child misbehaves, I have good ways to respond"),
               ("conf_3", "我能根据孩子的年龄特点选择合适的教育方式",
                "I can choose ways of teaching that suit my child's age"),
               ("conf_4", "对于如何陪伴孩子学习和成长，我心里有数", "I have a clear idea of how to support my child's learning and growth"),
               ("conf_5", "总体上，我对自己教育孩子的能力有信心", "Overall, I am confident in my ability to raise my child"),
           ], indicator="parenting_confidence", scale="confidence"),
    one("yesno", "mh_aware",
        "如果孩子出现情绪或心理方面的困扰，您知道可以到哪里寻求专业帮助吗？（如社区心理咨询室、街道未成年人保护工作站）",
        "If your child had emotional or psychological difficulties, would you know where to get professional help "
        "(e.g. the community counselling room, the subdistrict minors' protection station)?",
        indicator="mh_service_awareness"),
    one("yesno", "participation",
        "最近3个月，您或孩子是否参加过社区组织的儿童议事会、志愿服务等活动？",
        "In the last 3 months, did you or the child take part in a children's council, volunteering or similar "
        "community activity?",
        indicator="participation"),
    many("services_used", "used_services", "参加过哪些活动？（可多选）", "Which activities did you take part in? (choose all that apply)",
         relevant="${participation} = 1"),
    one("willing3", "vol_willing", "您是否愿意加入社区家长志愿者队伍，参与儿童服务？",
        "Would you be willing to join the community's parent volunteer team and help with children's services?"),
    satisfaction_grid("您对社区以下方面的工作满意吗？", "How satisfied are you with the community's work in these areas?", [
        ("sat_space", "growth_space", "儿童游玩和活动空间（广场、居民之家、小区游乐场地等）",
         "Places for children to play and do activities (plaza, residents' hall, play areas)"),
        ("sat_family", "family_education", "家庭教育指导和亲子活动", "Family-education guidance and parent–child activities"),
        ("sat_mental", "mental_health", "儿童心理健康、安全和生命教育服务",
         "Children's mental-health, safety and life-education services"),
        ("sat_rights", "rights", "困境儿童关爱帮扶", "Care and support for children in difficulty"),
        ("sat_participation", "participation", "儿童参与社区事务的机会（如儿童议事会）",
         "Opportunities for children to take part in community affairs (e.g. children's council)"),
    ]),
    one("friendly5", "child_friendly", "总体而言，您觉得金尚社区对儿童友好吗？",
        "Overall, how child-friendly do you find Jinshang Community?"),
    *needs_block("您希望社区为孩子和家庭提供哪些服务？（可多选）",
                 "Which services would you like the community to provide for children and families? (choose all that apply)",
                 "请选出最需要的三项并排序", "Choose the three most needed and put them in order"),
    *personal_block("adult"),
    q("text", "suggestion", "您对社区开展儿童服务、建设儿童友好社区还有哪些意见和建议？",
      "Any other comments or suggestions about children's services and a child-friendly community?"),
]

# ============================================================================ child questionnaire

SAFETY = dict(indicator="safety_knowledge", scale="safety_quiz")
LIFE = dict(indicator="life_education", scale="life_quiz")

CHILD = [
    note("intro",
         "亲爱的小朋友：你好！我们想听听你对金尚社区的看法，让社区变得更适合你们成长。"
         "这不是考试，答案没有对错，按你的真实想法填写就好。你的回答会被保密。谢谢你！",
         "Hello! We would like to hear what you think about Jinshang Community so that it becomes a better place "
         "for you to grow up. This is not a test and there are no right or wrong answers — just answer honestly. "
         "Your answers are kept private. Thank you!"),
    compound_q("你住在金尚社区的哪个小区？（请填写小区名称）",
               "Which compound in Jinshang Community do you live in? (please write its name)"),
    one("gender", "gender", "你的性别", "Are you a boy or a girl?", role="gender"),
    q("integer", "child_age", "你今年几岁？（周岁）", "How old are you (full years)?", min=6, max=18, role="child_age"),
    one("grade", "grade", "你现在读几年级？", "Which grade are you in?"),
    one("hukou", "hukou", "你家的户口是厦门本地的吗？（不清楚可以问问爸爸妈妈）",
        "Is your family's hukou registered in Xiamen? (ask your parents if you are not sure)", role="hukou"),
    one("after_school_place", "after_school_place", "放学后，你通常在哪里度过？", "Where do you usually spend time after school?"),
    one("freq_use", "use_plaza", "最近3个月，你去法治文化广场玩的频率是？",
        "In the last 3 months, how often did you go to the Rule-of-Law Culture Plaza to play?",
        indicator="space_use"),
    one("freq_use", "use_library", "最近3个月，你去居民之家儿童图书馆（看书、借书、参加活动）的频率是？",
        "In the last 3 months, how often did you go to the children's library in the residents' hall "
        "(to read, borrow books or join activities)?",
        indicator="space_use"),
    matrix("safe_play_grid", "关于在社区里玩耍，你同意下面的说法吗？",
           "About playing in the community, do you agree with these statements?",
           "agree5", [
               ("play_1", "小区里有我可以放心玩耍的地方", "There are places in my compound where I can play without worry"),
               ("play_2", "在小区里玩的时候，我不用担心来往的车辆", "When I play in my compound, I don't have to worry about cars"),
               ("play_3", "小区里的游乐设施是完好、安全的", "The play equipment in my compound is in good, safe condition"),
               ("play_4", "我在法治文化广场玩的时候感到安全", "I feel safe when I play at the Rule-of-Law Culture Plaza"),
               ("play_5", "在外面玩遇到危险时，我知道附近可以找谁帮忙",
                "If something dangerous happens while I'm playing outside, I know who nearby can help"),
           ], indicator="safe_play", scale="safe_play"),
    matrix("pcc_child_grid", "下面是关于你和爸爸妈妈（或其他照顾你的大人）说话、交流的情况，你同意吗？",
           "These statements are about how you talk with your parents (or the adults who look after you). Do you agree?",
           "agree5", [
               ("pccc_1", "有心事的时候，我愿意跟爸爸妈妈说", "When something is on my mind, I'm happy to tell my parents",
                {"subscale": OPEN}),
               ("pccc_2", "我和爸爸妈妈说话时，经常闹得不愉快", "Talks with my parents often end badly", REV),
               ("pccc_3", "爸爸妈妈会认真听我把话说完", "My parents listen carefully until I've finished", {"subscale": OPEN}),
               ("pccc_4", "我觉得爸爸妈妈不理解我", "I feel my parents don't understand me", REV),
               ("pccc_5", "我可以跟爸爸妈妈说出自己的真实想法", "I can tell my parents what I really think", {"subscale": OPEN}),
               ("pccc_6", "有些话我不敢跟爸爸妈妈说", "There are things I don't dare tell my parents", REV),
           ], indicator="parent_child_comm", scale="pcc_child"),
    matrix("who5_grid", "在过去两周里，你有多少时间有以下感受？",
           "Over the last two weeks, how much of the time have you felt like this?",
           "who5_freq", [
               ("who5_1", "我感到快乐、心情舒畅", "I have felt cheerful and in good spirits"),
               ("who5_2", "我感到平静和放松", "I have felt calm and relaxed"),
               ("who5_3", "我感到充满活力、精力充沛", "I have felt active and vigorous"),
               ("who5_4", "我醒来时感到神清气爽、休息得很好", "I woke up feeling fresh and rested"),
               ("who5_5", "我每天的生活中充满了让我感兴趣的事情", "My daily life has been filled with things that interest me"),
           ], indicator="wellbeing", scale="who5"),
    note("quiz_note", "下面是一些安全和生活小知识题，请选出你认为正确的答案。",
         "Here are some questions about safety and everyday life. Choose the answer you think is right."),
    quiz("sq_fire", "家里或楼里发生火灾时，下面哪种做法是正确的？",
         "If there is a fire at home or in your building, what should you do?", [
             ("乘坐电梯快速下楼", "Take the lift down quickly"),
             ("用湿毛巾捂住口鼻，弯腰沿安全通道撤离", "Cover nose and mouth with a wet towel, stay low and leave by the fire exit"),
             ("躲进衣柜或床底下", "Hide in a wardrobe or under the bed"),
             ("先回屋里拿贵重物品", "Go back in for valuables first"),
         ], correct=2, **SAFETY),
    quiz("sq_crossing", "过马路时，正确的做法是？", "What is the right way to cross the road?", [
        ("绿灯亮时走人行横道，并左右看看确认安全", "Use the crossing on green and look both ways first"),
        ("车少的时候可以随意横穿", "Cross anywhere when there are few cars"),
        ("跟着别人一起闯红灯", "Cross on red together with other people"),
    ], correct=1, **SAFETY),
    quiz("sq_stranger", "放学时，一个陌生人说是你爸爸的同事，要带你回家，你应该怎么做？",
         "After school, a stranger says they are your dad's colleague and will take you home. What should you do?", [
             ("跟他走，因为他认识爸爸", "Go with them, they know Dad"),
             ("让他先给你买点吃的再走", "Ask them to buy you a snack first"),
             ("不跟他走，先找老师或打电话给爸爸妈妈确认", "Don't go; ask a teacher or phone your parents to check"),
         ], correct=3, **SAFETY),
    quiz("sq_phone", "火警报警电话是多少？", "What is the number to call for a fire?", [
        ("110", "110"), ("119", "119"), ("120", "120"), ("122", "122"),
    ], correct=2, **SAFETY),
    quiz("sq_drowning", "看到有小朋友落水，你应该怎么做？", "If you see a child fall into water, what should you do?", [
        ("马上跳下水去救", "Jump in at once to rescue them"),
        ("和其他小朋友手拉手下水去拉", "Hold hands with other children and wade in to pull them out"),
        ("大声呼救，找大人帮忙并拨打110或120", "Shout for help, get an adult and call 110 or 120"),
    ], correct=3, **SAFETY),
    quiz("sq_electric", "电器着火时，首先应该怎么做？", "If an electrical appliance catches fire, what should you do first?", [
        ("马上用水浇灭", "Pour water on it"),
        ("打开门窗通风", "Open the doors and windows"),
        ("先切断电源，并告诉大人", "Cut the power first and tell an adult"),
        ("用嘴吹灭", "Blow it out"),
    ], correct=3, **SAFETY),
    quiz("sq_quake", "发生地震时，如果你在楼上的家里，应该怎么做？",
         "If an earthquake happens while you are at home upstairs, what should you do?", [
             ("就近躲到坚固的桌子下或墙角，护住头部", "Take cover under a sturdy table or in a corner and protect your head"),
             ("马上乘电梯下楼", "Take the lift down immediately"),
             ("跑到阳台上或跳窗", "Run onto the balcony or jump out of a window"),
         ], correct=1, **SAFETY),
    quiz("sq_online", "网上认识的“朋友”想要你的家庭住址和照片，你应该怎么做？",
         "A \"friend\" you met online asks for your home address and photos. What should you do?", [
             ("告诉他，因为我们是好朋友", "Give them, we are good friends"),
             ("不告诉他，并告诉爸爸妈妈", "Don't give them, and tell your parents"),
             ("只发照片，不说地址", "Send photos but not the address"),
         ], correct=2, **SAFETY),
    quiz("lq_feelings", "心里很难过、很烦恼的时候，下面哪种做法最合适？",
         "When you feel very sad or upset, which of these is best?", [
             ("一直憋在心里，不告诉任何人", "Keep it all inside and tell no one"),
             ("找信任的大人或朋友说一说", "Talk to an adult or friend you trust"),
             ("摔东西、发脾气", "Throw things and lose your temper"),
         ], correct=2, **LIFE),
    quiz("lq_life", "关于生命，下面哪种说法是正确的？", "Which statement about life is right?", [
        ("人的生命只有一次，要珍爱自己，也要尊重他人的生命", "We only live once: value your own life and respect others' lives"),
        ("小动物的生命不重要", "Animals' lives do not matter"),
        ("游戏里可以复活，现实中也一样", "You can come back to life in games, so also in real life"),
    ], correct=1, **LIFE),
    quiz("lq_body", "如果有人触碰你背心和短裤遮住的身体部位，让你感到不舒服，你应该怎么做？",
         "If someone touches the parts of your body covered by your vest and shorts and it makes you "
         "uncomfortable, what should you do?", [
             ("不说出来，怕被骂", "Keep quiet for fear of being scolded"),
             ("觉得是自己的错", "Think it was your own fault"),
             ("大声拒绝、马上离开，并告诉信任的大人", "Say no loudly, leave at once and tell an adult you trust"),
         ], correct=3, **LIFE),
    quiz("lq_bullying", "看到同学被欺负时，你认为应该怎么做？", "If you see a classmate being bullied, what should you do?", [
        ("在旁边看热闹", "Stand by and watch"),
        ("告诉老师或家长，并安慰被欺负的同学", "Tell a teacher or parent and comfort the classmate"),
        ("跟着一起起哄", "Join in the jeering"),
    ], correct=2, **LIFE),
    matrix("prosocial_grid", "下面的说法符合你的情况吗？", "Do these statements describe you?", "agree5", [
        ("pro_1", "在家里，我会主动做一些力所能及的家务", "At home, I do some chores I can manage without being asked"),
        ("pro_2", "集体活动中，分给我的任务我会认真完成", "In group activities, I do my share of the work properly"),
        ("pro_3", "同学学习上遇到困难时，我愿意和他/她一起想办法",
         "When a classmate struggles with schoolwork, I'm willing to help them work it out"),
        ("pro_4", "我愿意参加社区的公益活动，为大家做点事", "I'm willing to join community service activities and do something for others"),
        ("pro_5", "对和我不一样的小朋友（如残疾儿童、刚转来的同学），我会友好相待",
         "I am friendly to children who are different from me (e.g. children with disabilities, new classmates)"),
    ], indicator="prosocial", scale="prosocial"),
    one("willing5", "help_willing", "如果社区里有生活困难或身体残疾的小朋友需要帮助，你愿意参与帮助他们吗？",
        "If children in the community who face hardship or have a disability need help, would you be willing to help them?",
        indicator="help_willingness"),
    matrix("voice_grid", "关于在社区里表达你的想法，你同意下面的说法吗？",
           "About having your say in the community, do you agree with these statements?", "agree5", [
               ("voice_1", "社区做和儿童有关的事情时，会听取我们小朋友的意见",
                "When the community does things that affect children, it asks for our views"),
               ("voice_2", "我知道可以通过什么方式向社区提出自己的想法", "I know how to share my ideas with the community"),
               ("voice_3", "我觉得我的想法对社区来说是重要的", "I feel my ideas matter to the community"),
               ("voice_4", "我有机会参与设计社区里的儿童活动", "I get the chance to help design children's activities in the community"),
           ], indicator="voice_counts", scale="voice"),
    one("yesno", "participation", "最近3个月，你参加过儿童议事会或社区志愿服务活动吗？",
        "In the last 3 months, did you take part in the children's council or a community volunteering activity?",
        indicator="participation"),
    many("child_activities", "used_activities", "你参加过哪些活动？（可多选）",
         "Which activities did you take part in? (choose all that apply)", relevant="${participation} = 1"),
    one("idea_adopted", "idea_adopted", "你在议事会或活动中提出的建议，社区采纳过吗？",
        "Has the community taken up a suggestion you made at the council or an activity?",
        relevant="${participation} = 1"),
    satisfaction_grid("你对社区下面这些方面满意吗？", "How happy are you with these things in the community?", [
        ("sat_space", "growth_space", "玩耍和活动的场地", "Places to play and do activities"),
        ("sat_family", "family_education", "亲子活动", "Parent–child activities"),
        ("sat_mental", "mental_health", "安全教育和心理健康活动", "Safety-education and mental-health activities"),
        ("sat_rights", "rights", "关心帮助有困难的小伙伴的活动", "Activities to care for and help children in difficulty"),
        ("sat_participation", "participation", "小朋友参与社区事务的机会（如儿童议事会）",
         "Chances for children to take part in community affairs (e.g. children's council)"),
    ]),
    one("friendly5", "child_friendly", "总体来说，你觉得金尚社区对小朋友友好吗？",
        "Overall, how child-friendly do you think Jinshang Community is?"),
    *needs_block("你希望社区多开展哪些活动或提供哪些服务？（可多选）",
                 "Which activities or services would you like the community to offer more of? (choose all that apply)",
                 "请选出最需要的三项并排序", "Choose the three you need most and put them in order"),
    *personal_block("child"),
    q("text", "suggestion", "你对社区还有什么想法或建议？", "Any other ideas or suggestions for the community?"),
]

# ============================================================================ community questionnaire

COMMUNITY = [
    note("intro",
         "尊敬的居民朋友：您好！为了解居民对社区建设和儿童友好工作的看法，我们开展本次调查。"
         "问卷约需8分钟，结果仅用于统计分析，请根据实际情况填写。感谢您的支持！",
         "Dear resident: we would like to know your views on community life and child-friendly work in Jinshang "
         "Community. The survey takes about 8 minutes and results are used only for statistics. Thank you!"),
    compound_q("您居住在金尚社区的哪个小区？（请填写小区名称）",
               "Which compound in Jinshang Community do you live in? (please write its name)"),
    one("gender", "gender", "您的性别", "Your gender", role="gender"),
    q("integer", "resp_age", "您的年龄（周岁）", "Your age (full years)", min=18, max=100, role="respondent_age"),
    one("hukou", "hukou", "您的户籍情况", "Your registration (hukou) status", role="hukou"),
    one("years_lived", "years_lived", "您在金尚社区居住了多长时间？", "How long have you lived in Jinshang Community?"),
    one("education", "education", "您的文化程度", "Your highest level of education"),
    one("employment", "employment", "您目前的就业状况", "Your current employment status"),
    one("yesno", "has_children", "您家中是否有18岁以下的孩子？", "Are there children under 18 in your household?"),
    q("integer", "n_children", "您家中有几个18岁以下的孩子？", "How many children under 18 live in your household?",
      min=1, max=6, relevant="${has_children} = 1"),
    one("info_channel", "info_channel", "您平时主要通过什么渠道了解社区信息？",
        "What is your main channel for community news?"),
    one("neighbour_contact", "neighbour_contact", "您和邻居平时的来往情况是？", "How much contact do you have with your neighbours?"),
    one("project_aware", "project_aware", "您是否了解社区正在开展的“筑梦‘童’行”儿童友好社区项目？",
        "Do you know about the community's \"Building Dreams Together\" child-friendly community project?"),
    matrix("bscs_grid", "以下说法与您在金尚社区的感受相符吗？请选择您的同意程度。",
           "Do these statements match how you feel about Jinshang Community? Please choose how far you agree.",
           "agree5", [
               ("soc_1", "住在这个社区，我日常生活的需要能得到满足", "Living here, my everyday needs are met",
                {"subscale": "needs"}),
               ("soc_2", "遇到困难时，社区能为我和家人提供需要的帮助",
                "When we run into difficulties, the community gives my family and me the help we need",
                {"subscale": "needs"}),
               ("soc_3", "我把自己当作金尚社区的“自家人”", "I see myself as one of the Jinshang Community family",
                {"subscale": "membership"}),
               ("soc_4", "社区里有不少我认识、信得过的邻居", "There are quite a few neighbours here whom I know and trust",
                {"subscale": "membership"}),
               ("soc_5", "我向社区反映的意见能得到回应和采纳", "When I raise a concern with the community, it is answered and acted on",
                {"subscale": "influence"}),
               ("soc_6", "邻里之间一起商量，能把小区里的难题办好",
                "When neighbours talk things over together, we can sort out problems in the compound",
                {"subscale": "influence"}),
               ("soc_7", "我对金尚社区有感情，愿意长期住在这里",
                "I feel attached to Jinshang Community and would like to stay here for a long time",
                {"subscale": "emotional"}),
               ("soc_8", "我喜欢和邻居们一起参加活动、分享生活", "I enjoy joining activities and sharing daily life with my neighbours",
                {"subscale": "emotional"}),
           ], indicator="sense_of_community", scale="bscs"),
    many("gov_known", "gov_known", "您知道社区的以下哪些居民议事和服务机制？（可多选）",
         "Which of these community mechanisms for residents' say and services do you know about? (choose all that apply)",
         indicator="governance_awareness"),
    many("gov_used", "gov_used", "您使用或参加过其中哪些？（可多选）", "Which of them have you used or taken part in? (choose all that apply)",
         indicator="governance_awareness", relevant="not(selected(${gov_known}, 6))"),
    one("yesno", "participation", "最近3个月，您是否参加过社区志愿服务或议事协商活动？",
        "In the last 3 months, did you take part in community volunteering or a residents' consultation?",
        indicator="participation"),
    one("willing3", "vol_willing", "如果社区组建志愿者队伍为儿童和家庭提供服务，您是否愿意参加？",
        "If the community set up a volunteer team to serve children and families, would you join?"),
    one("support5", "child_council_support",
        "您是否赞成让儿童参与社区议事（如设立儿童议事会，听取孩子对社区建设的意见）？",
        "Do you support children taking part in community decisions (e.g. a children's council that is consulted "
        "on community projects)?"),
    one("enough5", "play_space_enough", "您觉得社区里供儿童户外活动的空间是否充足？",
        "Is there enough outdoor space for children in the community?"),
    many("hazards", "hazards", "您认为社区里儿童面临的主要安全隐患有哪些？（可多选）",
         "What are the main safety hazards for children in the community? (choose all that apply)"),
    satisfaction_grid("您对社区以下方面的工作满意吗？", "How satisfied are you with the community's work in these areas?", [
        ("sat_space", "growth_space", "儿童游玩和活动空间建设", "Play and activity spaces for children"),
        ("sat_family", "family_education", "家庭教育指导服务", "Family-education guidance"),
        ("sat_mental", "mental_health", "儿童心理健康与安全教育", "Children's mental-health and safety education"),
        ("sat_rights", "rights", "困境儿童关爱帮扶", "Care and support for children in difficulty"),
        ("sat_participation", "participation", "居民和儿童参与社区议事", "Residents' and children's say in community affairs"),
    ]),
    one("friendly5", "child_friendly", "总体而言，您觉得金尚社区对儿童友好吗？",
        "Overall, how child-friendly do you find Jinshang Community?"),
    *needs_block("您认为社区最需要为儿童和家庭提供哪些服务？（可多选）",
                 "Which services does the community most need to provide for children and families? (choose all that apply)",
                 "请选出最需要的三项并排序", "Choose the three most needed and put them in order"),
    *personal_block("adult"),
    q("text", "suggestion", "您对社区建设和儿童友好工作还有哪些意见和建议？",
      "Any other comments or suggestions on community life and child-friendly work?"),
]

# ============================================================================ activity pre/post test

WORKSHOP = dict(indicator="parent_child_comm", scale="workshop", measure="ordinal")
WORKSHOP_ITEMS = [
    ("ws_1", "孩子说话时，我能放下手机，专心听他/她说完", "When my child talks, I put my phone down and listen until they finish"),
    ("ws_2", "我能说出孩子当时的感受（例如“你看起来很失望”）", "I can name what my child is feeling at the moment (e.g. \"you look disappointed\")"),
    ("ws_3", "和孩子意见不一致时，我能先让自己冷静下来再沟通", "When we disagree, I calm myself down before we talk"),
    ("ws_4", "我会用“我觉得……”来表达感受，而不是指责孩子", "I say \"I feel…\" to express myself instead of blaming my child"),
    ("ws_5", "我知道如何和孩子一起商量、制定家庭规则", "I know how to agree family rules together with my child"),
    ("ws_6", "孩子愿意主动跟我分享他/她的想法和心事", "My child willingly shares their thoughts and worries with me"),
    ("ws_7", "我对改善和孩子的沟通有信心", "I am confident I can improve communication with my child"),
]

ACTIVITY = [
    note("intro",
         "家长您好！本问卷在活动开始前和结束后各填写一次，用于了解活动效果。请选择同意程度，答案没有对错之分。",
         "Dear parent: please fill in this questionnaire once before and once after the activity, so we can see "
         "what the activity achieves. Choose how far you agree; there are no right or wrong answers."),
    one("activity_id", "activity_id", "您参加的是哪一场活动？", "Which activity are you attending?"),
    one("phase", "phase", "本次填写是在活动前还是活动后？", "Are you filling this in before or after the activity?",
        role="phase"),
    one("relation", "relation", "您是孩子的什么人？", "What is your relationship to the child?", role="respondent_role"),
    *[one("agree5", name, zh, en, **WORKSHOP)
      for name, zh, en in WORKSHOP_ITEMS],
    one("satisfaction", "satisfaction", "您对本次活动的总体满意程度是？", "Overall, how satisfied are you with this activity?",
        indicator="satisfaction", service_line="family_education", satisfaction="yes",
        relevant="${phase} = 2"),
    one("recommend", "recommend", "您是否愿意推荐其他家长参加此类活动？",
        "Would you recommend this kind of activity to other parents?", relevant="${phase} = 2"),
    note("personal_note",
         "手机号码仅用于匹配您活动前后的两份问卷，将严格保密，不会出现在任何统计结果中。",
         "Your mobile number is only used to match your before and after questionnaires. It is kept confidential "
         "and never appears in any results."),
    q("text", "phone", "您的手机号码", "Your mobile number", personal="yes", role="link_phone", required="yes"),
    q("text", "suggestion", "您对本次活动还有什么意见和建议？", "Any comments or suggestions about this activity?"),
]

# ============================================================================ instruments

INSTRUMENTS = {
    "parent": dict(items=PARENT, title="金尚社区“筑梦‘童’行”儿童友好社区调查问卷（家长卷）",
                   population="households_with_children"),
    "child": dict(items=CHILD, title="金尚社区“筑梦‘童’行”儿童友好社区调查问卷（儿童卷）",
                  population="children_8_17", min_age=8, max_age=17),
    "community": dict(items=COMMUNITY, title="金尚社区“筑梦‘童’行”儿童友好社区调查问卷（居民卷）",
                      population="adult_residents"),
    "activity": dict(items=ACTIVITY, title="“筑梦‘童’行”亲子沟通工作坊活动前后测问卷", population=None),
}

# ============================================================================ writing

WIDTHS = {
    "type": 30, "name": 24, ZH: 60, EN: 60, "qnum": 6, "required": 9, "relevant": 30, "min": 6, "max": 6,
    "measure": 10, "indicator": 22, "service_line": 17, "scale": 15, "subscale": 12, "reverse": 8,
    "correct": 8, "personal": 9, "role": 16, "need": 6, "satisfaction": 12, "appearance": 12,
    "list_name": 20, "score": 7, "other": 7, "method": 8, "min_answered": 13, "multiplier": 11,
    "low_cut": 9, "mcid": 7, "form_title": 50, "form_id": 12, "version": 10, "default_language": 17,
    "population": 26, "min_age": 9, "max_age": 9,
}


def _sheet(wb: Workbook, title: str, columns: list[str], rows: list[dict]) -> None:
    ws = wb.create_sheet(title)
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([row.get(c) for c in columns])
    for i, c in enumerate(columns, start=1):
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = WIDTHS.get(c, 12)
    ws.freeze_panes = "A2"


def build(instrument: str, spec: dict) -> Workbook:
    rows, own_lists = flatten(spec["items"])
    lists = {**CHOICES, **own_lists}
    used = []
    for r in rows:
        kind, _, list_name = r["type"].partition(" ")
        if list_name and list_name not in used:
            used.append(list_name)
    choice_rows = []
    for list_name in used:
        for code, opt in enumerate(lists[list_name], start=1):
            zh, en, *extra = opt
            choice_rows.append({"list_name": list_name, "name": code, ZH: zh, EN: en, **(extra[0] if extra else {})})
    scale_ids = []
    for r in rows:
        if r.get("scale") and r["scale"] not in scale_ids:
            scale_ids.append(r["scale"])
    scale_rows = [{"scale": s, ZH: SCALES[s]["zh"], EN: SCALES[s]["en"],
                   **{k: v for k, v in SCALES[s].items() if k not in ("zh", "en")}} for s in scale_ids]
    settings = {"form_title": spec["title"], "form_id": instrument, "version": VERSION,
                "default_language": "中文 (zh)", "population": spec.get("population"),
                "min_age": spec.get("min_age"), "max_age": spec.get("max_age")}

    wb = Workbook()
    wb.remove(wb.active)
    _sheet(wb, "survey", SURVEY_COLUMNS, rows)
    _sheet(wb, "choices", CHOICE_COLUMNS, choice_rows)
    _sheet(wb, "scales", SCALE_COLUMNS, scale_rows)
    _sheet(wb, "settings", SETTINGS_COLUMNS, [settings])
    wb.properties.creator = "tongxing tools/build_questionnaires.py"
    wb.properties.lastModifiedBy = "tongxing tools/build_questionnaires.py"
    wb.properties.title = spec["title"]
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    return wb


def save_deterministic(wb: Workbook, path: Path) -> None:
    """Save with fixed document properties and zip timestamps (openpyxl's save() stamps 'now')."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(wb, archive).save()
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            dst.writestr(fixed, src.read(info.filename))
    path.write_bytes(out.getvalue())


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for instrument, spec in INSTRUMENTS.items():
        path = OUT_DIR / f"{instrument}.xlsx"
        save_deterministic(build(instrument, spec), path)
        rows, _ = flatten(spec["items"])
        n_q = len({r["qnum"] for r in rows if r.get("qnum")})
        n_answer = sum(1 for r in rows if r["type"] not in ("note", "begin_group", "end_group"))
        print(f"{path.relative_to(ROOT)}: {n_q} questions, {n_answer} answer rows")


if __name__ == "__main__":
    main()
