# Progress of long runs (make bench, bench/soak, make fuzz) on a terminal:
# one status line, redrawn in place, saying the row or phase, how much is
# done out of how much, and the time left.  Nothing at all when standard
# error is not a terminal (or TERM is dumb, or SCEP_PROGRESS=0), so that
# logs hold only the results.  Sourced by bash scripts.
#
#   progress TEXT DONE TOTAL LEFT [UNIT]
#                                   "[DONE/TOTAL UNIT done, 1m 15s left]
#                                   TEXT" (LEFT in seconds, empty if not
#                                   known yet), cut at the terminal's
#                                   width
#   progress_left START DONE TOTAL  prints the seconds left at the rate
#                                   since START (epoch seconds) so far
#   progress_clear                  removes the line before other output

PROGRESS_ON=0
PROGRESS_SHOWN=0
PROGRESS_COLS=80

if [[ -t 2 && ${TERM:-dumb} != dumb && ${SCEP_PROGRESS:-1} != 0 ]]; then
    PROGRESS_ON=1
    PROGRESS_COLS=$(tput cols 2>/dev/null || echo 80)
    [[ $PROGRESS_COLS =~ ^[1-9][0-9]*$ ]] || PROGRESS_COLS=80
fi

# 75 -> "1m 15s", 4000 -> "1h 06m"
progress_duration() {
    local s=$1
    if ((s >= 3600)); then
        printf '%dh %02dm' $((s / 3600)) $((s % 3600 / 60))
    elif ((s >= 60)); then
        printf '%dm %02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

progress_left() {
    local start=$1 done=$2 total=$3 elapsed
    elapsed=$((EPOCHSECONDS - start))
    ((done > 0 && elapsed > 0)) || return 0
    echo $((elapsed * (total - done) / done))
}

progress() {
    ((PROGRESS_ON)) || return 0
    local text=$1 done=$2 total=$3 left=${4-} unit=${5:+ $5} line
    line="[$done/$total$unit done, "
    if [[ -n $left ]]; then
        line+="$(progress_duration "$left") left] $text"
    else
        line+="time left unknown] $text"
    fi
    printf '\r\033[K%s' "${line:0:PROGRESS_COLS-1}" >&2
    PROGRESS_SHOWN=1
}

progress_clear() {
    ((PROGRESS_ON && PROGRESS_SHOWN)) || return 0
    printf '\r\033[K' >&2
    PROGRESS_SHOWN=0
}
