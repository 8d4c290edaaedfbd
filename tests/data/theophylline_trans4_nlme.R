# R nlme's theophylline fit in NONMEM TRANS4 parameters (CL, V, ka), the reference of
# the shipped broad one-compartment oral network (tests/test_theophylline_broad.py).
#
# Run from the repository root:  Rscript tests/data/theophylline_trans4_nlme.R
# Writes tests/data/theophylline_trans4_nlme.json (base R and nlme only).
#
# Model: C(t) = Dose ka / (V (ka - CL/V)) (exp(-CL/V t) - exp(-ka t)), Dose in mg/kg,
# so CL in L/h/kg and V in L/kg; random effects pdDiag(lCL + lV + lka), additive
# error, maximum likelihood. (R's SSfol fit puts its random effects on lKe, lKa, lCl;
# with V = Cl / ke random through Cl that is another model, log-likelihood -177.02
# against -179.32 here. With random = lCL + lka alone nlme stops at its iteration
# limit, so the three-effect model is the reference.)
suppressMessages(library(nlme))
source("tests/data/json_writer.R")
conc_trans4 <- function(Dose, Time, lCL, lV, lka) {
  CL <- exp(lCL); V <- exp(lV); ka <- exp(lka); ke <- CL / V
  Dose * ka / (V * (ka - ke)) * (exp(-ke * Time) - exp(-ka * Time))
}
d <- groupedData(conc ~ Time | Subject, data = as.data.frame(Theoph))
fit <- nlme(conc ~ conc_trans4(Dose, Time, lCL, lV, lka), data = d,
            fixed = lCL + lV + lka ~ 1, random = pdDiag(lCL + lV + lka ~ 1),
            start = c(lCL = -3.22, lV = -0.77, lka = 0.47), method = "ML")
print(summary(fit))
sd <- as.numeric(VarCorr(fit)[c("lCL", "lV", "lka"), "StdDev"])
out <- list(
  nlme_version = as.character(packageVersion("nlme")),
  R_version = R.version.string,
  fixed = as.list(fixef(fit)),
  fixed_se = as.list(sqrt(diag(vcov(fit)))),
  sd = list(lCL = sd[1], lV = sd[2], lka = sd[3]),
  sigma = fit$sigma,
  loglik = as.numeric(logLik(fit)),
  nobs = nrow(d)
)
writeLines(to_json(out), "tests/data/theophylline_trans4_nlme.json")
