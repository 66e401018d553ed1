"""The default words of [lost_reasons] (docs/measures.md#lost-reasons): what customers write when they
cancel (解約理由, 備考), the categories support files contacts under, the details of life events.

Data, not labels: a shop edits them in its kizuna.toml. Within a list a longer word comes before a
shorter one it contains, because the first word found is the one shown with the reason.
"""

__all__ = ["DRIFTED_WORDS", "SITUATION_WORDS", "UNRESOLVED_WORDS"]

UNRESOLVED_WORDS = (
    "高い", "高く", "値段", "価格", "料金", "費用", "請求", "不満", "故障", "壊れ", "不具合", "不良", "対応",
    "クレーム", "品質", "まずい", "おいしくない", "美味しくない", "遅い", "遅れ", "遅延", "届かない", "大変",
    "重い", "面倒", "使いにくい", "わかりにくい", "分かりにくい", "他社", "乗り換え", "乗換",
)
SITUATION_WORDS = (
    "引越し", "引っ越し", "引越", "転居", "転勤", "異動", "単身赴任", "結婚", "出産", "妊娠", "離婚", "入院",
    "介護", "家族", "同居", "独立", "進学", "就職", "退職", "留学", "海外", "実家",
)
DRIFTED_WORDS = (
    "使い切れない", "使いきれない", "飲み切れない", "飲みきれない", "余って", "余る", "使わない",
    "使っていない", "不要", "必要ない", "いらない", "忘れ", "なんとなく", "何となく", "飽き",
)


