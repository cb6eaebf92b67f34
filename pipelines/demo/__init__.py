"""The demo: a synthetic 金尚社区, its survey samples and realistic 问卷星 downloads (see build.py)."""
