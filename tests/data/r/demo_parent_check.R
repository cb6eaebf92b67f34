# One-off check (2026-11-29, R 4.2.2, survey 4.1.1): the demo's 2024-needs parent estimates from
# pipelines.estimates equal R's svydesign() + rake() + svymean()/svyciprop(logit) to every printed digit.
# /tmp/parent.csv was written from the clean table; see tests/test_r_demo.py for the automated version.
suppressMessages(library(survey))
d <- read.csv("/tmp/parent.csv", stringsAsFactors=FALSE)
des <- svydesign(ids=~1, strata=~stratum, weights=~base_weight, data=d)
mc <- data.frame(compound=c("jinshang","zhongfucheng","fengzeyuan","zhongfu","jinhong","yiyuan","laiyin","yulu"), Freq=c(365,395,228,243,258,182,228,201))
mh <- data.frame(hukou_group=c("registered","floating"), Freq=c(1610,490))
ma <- data.frame(child_age_band=c("0-5","6-11","12-17"), Freq=c(657,722,721))
r <- rake(des, list(~compound, ~hukou_group, ~child_age_band), list(mc, mh, ma), control=list(maxit=100, epsilon=1e-8))
cat("max weight diff", max(abs(weights(r) - d$weight)), "\n")
options(digits=10)
for (v in c("child_age","pcc_score","confidence_score","use_plaza")) {
  s <- subset(r, !is.na(get(v)))
  m <- svymean(as.formula(paste0("~",v)), s, deff=TRUE)
  cat(v, coef(m), SE(m), deff(m), confint(m, df=degf(s)), "\n")
}
for (v in c("needs__1","needs__3","mh_aware")) {
  s <- subset(r, !is.na(get(v)))
  p <- svyciprop(as.formula(paste0("~I(", v, "==1)")), s, method="logit")
  cat(v, coef(p), SE(p), confint(p), "\n")
}
s <- subset(r, !is.na(pcc_score) & compound=="yulu")
m <- svymean(~pcc_score, s); cat("yulu pcc", coef(m), SE(m), confint(m, df=degf(s)), "\n")
