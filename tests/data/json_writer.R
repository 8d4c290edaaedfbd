# Shared by the R reference scripts of tests/data (base R only).
# a minimal JSON writer (jsonlite is not always installed): named lists -> objects,
# vectors of length != 1 -> arrays, numbers with 10 significant digits
to_json <- function(x) {
  if (is.list(x)) {
    inner <- vapply(x, to_json, "")
    if (is.null(names(x))) return(paste0("[", paste(inner, collapse = ", "), "]"))
    return(paste0("{", paste0('"', names(x), '": ', inner, collapse = ",\n "), "}"))
  }
  v <- if (is.character(x)) paste0('"', x, '"') else trimws(formatC(x, digits = 10, format = "g"))
  if (length(x) == 1) v else paste0("[", paste(v, collapse = ", "), "]")
}
