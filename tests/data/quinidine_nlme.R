# R nlme's fits of the Quinidine study, the reference of tests/test_quinidine_nlme.py.
#
# Run from the repository root:  Rscript tests/data/quinidine_nlme.R
# Writes tests/data/quinidine_nlme.json (base R and nlme only; nlme is GPL >= 2,
# the data come from Verme et al. 1992 via Pinheiro & Bates 2000, Appendix A.25).
#
# Models (Pinheiro & Bates 2000, section 8.2): one compartment, first-order absorption,
# parameters lV, lKa, lCl (log V in L, log ka in 1/h, log Cl in L/h), random effects
# pdDiag(lV + lCl), additive error, maximum likelihood (method = "ML", not REML).
#   base:      lV + lKa + lCl ~ 1
#   covariate: lCl ~ glyco + Cr + Weight, lV + lKa ~ 1
# sknlme's covariates are per individual, so BOTH fits here use each subject's first
# (baseline) value of glyco, Weight and Creatinine (Cr = 1 for a creatinine clearance
# >= 50 mL/min, 0 below; a 0/1 column rather than R's polynomial contrast of the
# ordered factor). P&B let glyco etc. vary within subject, so their numbers differ.
# The SD of lV goes to 0 (6.5e-5) in both fits, so each is refitted with random = lCl
# alone ("base_cl", "covariate_cl"): the same maximum, one variance fewer (df).
suppressMessages(library(nlme))
source("tests/data/json_writer.R")  # to_json(), as jsonlite is not always installed
q <- as.data.frame(Quinidine)
q$Subject <- as.character(q$Subject)
first <- q[!duplicated(q$Subject), ]
base_of <- function(v) first[[v]][match(q$Subject, first$Subject)]
q$glyco0 <- base_of("glyco")
q$Weight0 <- base_of("Weight")
q$Cr0 <- as.numeric(as.character(base_of("Creatinine")) == ">= 50")
qd <- groupedData(conc ~ time | Subject, data = q, order.groups = FALSE)

summarise <- function(fit) {
  sds <- as.numeric(VarCorr(fit)[, "StdDev"])
  names(sds) <- rownames(VarCorr(fit))
  list(
    fixed = as.list(fixef(fit)),
    fixed_se = as.list(sqrt(diag(vcov(fit)))),
    sd = as.list(sds[names(sds) != "Residual"]),
    sigma = fit$sigma,
    loglik = as.numeric(logLik(fit)),
    df = attr(logLik(fit), "df"),
    nobs = nobs(fit),
    n_groups = as.numeric(fit$dims$ngrps[1])
  )
}

base <- nlme(conc ~ quinModel(Subject, time, conc, dose, interval, lV, lKa, lCl),
  data = qd, fixed = lV + lKa + lCl ~ 1, random = pdDiag(lV + lCl ~ 1),
  groups = ~Subject, start = list(fixed = c(5, -0.3, 2)), method = "ML",
  na.action = NULL, naPattern = ~ !is.na(conc))
f0 <- fixef(base)
cov <- update(base,
  fixed = list(lCl ~ glyco0 + Cr0 + Weight0, lKa + lV ~ 1),
  start = list(fixed = c(f0[["lCl"]], 0, 0, 0, f0[["lKa"]], f0[["lV"]])))
base_cl <- update(base, random = pdDiag(lCl ~ 1))
cov_cl <- update(cov, random = pdDiag(lCl ~ 1))

# quinModel at fixed parameters (every subject alike): the reference of the dosing
# conversion (observation rows only, in data order)
par <- c(lV = 5, lKa = -0.3, lCl = 2)
pred <- quinModel(q$Subject, q$time, q$conc, q$dose, q$interval,
  rep(par[["lV"]], nrow(q)), rep(par[["lKa"]], nrow(q)), rep(par[["lCl"]], nrow(q)))
obs <- !is.na(q$conc)
out <- list(
  nlme_version = as.character(packageVersion("nlme")),
  R_version = R.version.string,
  base = summarise(base),
  covariate = summarise(cov),
  base_cl = summarise(base_cl),
  covariate_cl = summarise(cov_cl),
  quinModel = list(params = as.list(par), subject = q$Subject[obs], time = q$time[obs],
                   conc = pred[obs])
)
writeLines(to_json(out), "tests/data/quinidine_nlme.json")
print(summary(base)); print(summary(cov)); print(summary(base_cl)); print(summary(cov_cl))
