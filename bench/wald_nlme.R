# R nlme's ML fits of bench/wald_check.py's replicates (random effects on lKa, lCl only).
#
#   Rscript bench/wald_nlme.R replicates.csv out.csv
#
# replicates.csv: rep, ID, Time, conc, Dose. out.csv: one row per replicate with the
# estimates and SEs of lKe, lKa, lCl (summary()$tTable), log sigma and the log SDs of
# the random effects (sqrt of the diagonal of fit$apVar, nlme's approximate covariance
# of the log SDs and log sigma); status "ok" or the error.
suppressPackageStartupMessages(library(nlme))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
rows <- list()
for (r in sort(unique(d$rep))) {
  g <- groupedData(conc ~ Time | ID, data = d[d$rep == r, c("ID", "Time", "conc", "Dose")])
  fit <- tryCatch(suppressWarnings(nlme(
    conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = g,
    fixed = lKe + lKa + lCl ~ 1, random = pdDiag(lKa + lCl ~ 1),
    start = c(lKe = -2.5, lKa = 0.5, lCl = -3.2), method = "ML")),
    error = function(e) e)
  keys <- c(outer(c("est.", "se."), c("lKe", "lKa", "lCl"), paste0))
  row <- c(list(rep = r, status = "ok"), setNames(as.list(rep(NA, 6)), keys),
           list(est.sd_lKa = NA, est.sd_lCl = NA, est.log_sigma = NA, se.log_sd_lKa = NA,
                se.log_sd_lCl = NA, se.log_sigma = NA, loglik = NA))
  if (inherits(fit, "error")) {
    row$status <- gsub("[\r\n,]", " ", conditionMessage(fit))
  } else {
    fe <- fixef(fit)
    se <- summary(fit)$tTable[, "Std.Error"]
    for (k in names(fe)) {
      row[[paste0("est.", k)]] <- fe[[k]]
      row[[paste0("se.", k)]] <- se[[k]]
    }
    sds <- as.numeric(VarCorr(fit)[c("lKa", "lCl"), "StdDev"])
    row$est.sd_lKa <- sds[1]
    row$est.sd_lCl <- sds[2]
    row$est.log_sigma <- log(fit$sigma)
    av <- fit$apVar
    ok <- is.matrix(av)
    v <- if (ok) sqrt(diag(av)) else rep(NA, 3)
    row$se.log_sd_lKa <- v[1]
    row$se.log_sd_lCl <- v[2]
    row$se.log_sigma <- v[3]
    row$loglik <- as.numeric(logLik(fit))
  }
  rows[[length(rows) + 1]] <- as.data.frame(row)
}
out <- do.call(rbind, rows)
write.csv(out, args[2], row.names = FALSE)
