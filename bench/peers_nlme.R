# R nlme peer of bench/peers.py: fit a NONMEM-style CSV, write estimates as key,value lines.
#
#   Rscript bench/peers_nlme.R MODEL study.csv out.csv
#
# MODEL "oral1c": nlme(conc ~ SSfol(Dose, Time, lKe, lKa, lCl),
#   random = pdDiag(lKe + lKa + lCl ~ 1), method = "ML"), start from SSfol's
#   own initial values on the pooled data (nlme's default for a selfStart model).
# MODEL "mrna": the simple mRNA transfection model's closed form on the log
#   fluorescence, random effects on log delta, log gamma, log k m0 scale, log t0,
#   start given (the simulation truth is NOT used: the model's prior means).
# The fit time is measured inside R (key fit_s); key status is "ok" or the error.
suppressPackageStartupMessages(library(nlme))
args <- commandArgs(trailingOnly = TRUE)
model <- args[1]
d <- read.csv(args[2])
out <- args[3]

obs <- d[d$EVID == 0 & d$MDV == 0, ]
res <- list()
warned <- character(0)
t_fit <- system.time({
  fit <- withCallingHandlers(tryCatch({
    if (model == "oral1c") {
      dose <- d[d$EVID == 1, c("ID", "AMT")]
      obs$Dose <- dose$AMT[match(obs$ID, dose$ID)]
      g <- groupedData(conc ~ Time | ID,
        data = data.frame(ID = obs$ID, Time = obs$TIME, conc = obs$DV, Dose = obs$Dose))
      nlme(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = g,
           fixed = lKe + lKa + lCl ~ 1, random = pdDiag(lKe + lKa + lCl ~ 1),
           method = "ML")
    } else if (model == "mrna") {
      g <- data.frame(ID = factor(obs$ID), t = obs$TIME, y = obs$DV)
      f <- function(t, ld, lg, lk, lt, lo) {
        s <- pmax(t - exp(lt), 0)
        dl <- exp(ld); gm <- exp(lg)
        p <- exp(lk) / (dl - gm) * (exp(-gm * s) - exp(-dl * s))
        log(pmax(p, 0) + exp(lo))
      }
      start <- c(ld = -0.7, lg = -3.0, lk = 6.0, lt = 0.0, lo = 2.0)
      nlme(y ~ f(t, ld, lg, lk, lt, lo), data = g,
           fixed = ld + lg + lk + lt + lo ~ 1, random = pdDiag(ld + lg + lk + lt ~ 1),
           groups = ~ID, start = start, method = "ML",
           control = nlmeControl(pnlsTol = 0.01, maxIter = 200, returnObject = TRUE))
    } else stop("unknown model ", model)
  }, error = function(e) e), warning = function(w) {
    warned <<- unique(c(warned, conditionMessage(w)))
    invokeRestart("muffleWarning")
  })
})
res$fit_s <- t_fit[["elapsed"]]
if (inherits(fit, "error")) {
  res$status <- gsub("[\r\n,]", " ", conditionMessage(fit))
} else {
  res$status <- "ok"
  fe <- fixef(fit)
  se <- summary(fit)$tTable[, "Std.Error"]
  vc <- VarCorr(fit)
  sds <- setNames(as.numeric(vc[, "StdDev"]), rownames(vc))
  for (k in names(fe)) {
    res[[paste0("fixed.", k)]] <- fe[[k]]
    res[[paste0("se.", k)]] <- se[[k]]
  }
  for (k in names(fe)) if (k %in% names(sds)) res[[paste0("sd.", k)]] <- sds[[k]]
  res$sigma <- fit$sigma
  res$loglik <- as.numeric(logLik(fit))
  # nlme's own non-convergence (returnObject = TRUE) and getInitial's warnings
  res$warnings <- gsub("[\r\n,]", " ", paste(warned, collapse = "; "))
}
writeLines(paste(names(res), unlist(lapply(res, as.character)), sep = ","), out)
