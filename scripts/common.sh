# Sourced by every driver (the task drivers through scripts/launch.sh), after its variables are set:
#   DRY_RUN=1 bash DRIVER ...   prints each command the driver would run, one a line, shell-quoted so that it
#                               can be pasted back, and runs none of them (nothing is trained or written)
#   bash DRIVER --help (or -h)  lists the driver's variables with their defaults, then where the flags of the
#                               program it runs are described, and exits
# A driver runs its commands through goat_run (goat_report for the final report step).
DRY_RUN="${DRY_RUN:-0}"   # 1: print each command instead of running it (0 or empty: run them)

goat_dry_run() { [ -n "$DRY_RUN" ] && [ "$DRY_RUN" != 0 ]; }

# goat_quote ARG...: the arguments as one shell line; those that need it are single-quoted.
goat_quote() {
  local arg line="" q="'" escaped="'\\''"
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      line+=" $arg"
    elif [[ "$arg" = *[[:cntrl:]]* ]]; then   # a newline or tab: bash's $'...', so the command stays on one line
      line+=" $(printf '%q' "$arg")"
    else
      line+=" '${arg//$q/$escaped}'"
    fi
  done
  printf '%s\n' "${line# }"
}

# goat_run CMD ARG...: runs the command, or under DRY_RUN prints it.
goat_run() {
  if goat_dry_run; then
    goat_quote "$@"
  else
    "$@"
  fi
}

# goat_report CMD ARG...: the report step after the runs; goat_run, marked as such under DRY_RUN.
goat_report() {
  if goat_dry_run; then
    echo "# report step"
  fi
  goat_run "$@"
}

# goat_help: usage, the driver's header comment, then the NAME=... lines at the top level of the driver and of
# the files it sources (this one included): each name with its default and the line's comment.
goat_help() {
  local driver="$0" file i
  [[ "$driver" = /* ]] || driver="$OLDPWD/$driver"   # the drivers cd once, before sourcing this
  local files=("$driver")
  for ((i = ${#BASH_SOURCE[@]} - 2; i >= 0; i--)); do
    [[ " ${files[*]} " = *" ${BASH_SOURCE[i]} "* ]] || files+=("${BASH_SOURCE[i]}")
  done
  local usage="Usage: [VARIABLE=value ...] bash $0"
  grep -q '"\$@"' "$driver" && usage+=" [FLAG ...]"
  printf '%s\n\n' "$usage"
  awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$driver"
  local title from_env in_file
  for file in "${files[@]}"; do
    title="$file"
    [ "$file" != "$driver" ] || title="$(basename "$driver")"
    from_env="$(_goat_variables "$file" env)"
    in_file="$(_goat_variables "$file" file)"
    [ -z "$from_env" ] || printf '\nVariables of %s (set them in the environment):\n%s\n' "$title" "$from_env"
    [ -z "$in_file" ] || printf '\nSet in %s itself (edit the file to change them):\n%s\n' "$title" "$in_file"
  done
  echo
  echo "DRY_RUN=1 bash $0 ... prints the commands it would run, and runs none."
  local family module
  family="$(sed -n 's/^[[:space:]]*goat_train \([a-z_]*\).*/\1/p' "$driver" | head -n 1)"
  if [ -n "$family" ]; then
    echo "The trainer's flags (any can follow the driver's name): python -m goat.train $family --help"
  fi
  for module in $(grep -v '^[[:space:]]*#' "$driver" | grep -o -- '-m goat\.[a-z_.]*' | sed 's/^-m //' | sort -u); do
    [ "$module" != goat.report ] || continue
    echo "The flags of what it runs: python -m $module --help"
  done
}

# _goat_variables FILE env|file: FILE's top-level NAME="${NAME:-default}" lines (env) or other NAME=value lines
# (file), one "  NAME=default  # comment" line each; "now" when the environment changed the value.
_goat_variables() {
  local line name value comment prefix default now assignment='^([A-Z][A-Z0-9_]*)=([^(].*)?$'
  while IFS= read -r line; do
    [[ "$line" =~ $assignment ]] || continue
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    comment=""
    if [[ "$value" = *[[:space:]]\#* ]]; then
      comment="${value#*[[:space:]]\#}"
      comment="${comment# }"
      value="${value%%[[:space:]]\#*}"
    fi
    value="${value%"${value##*[![:space:]]}"}"
    value="${value#[\"\']}"
    value="${value%[\"\']}"
    prefix="\${$name:-"
    if [[ "$value" = "$prefix"*"}" ]]; then
      [ "$2" = env ] || continue
      default="${value#"$prefix"}"
      default="${default%\}}"
    else
      [ "$2" = file ] || continue
      default="$value"
    fi
    if [[ "$default" = *\$* ]]; then   # computed when the driver runs: shown as written
      line="  $name=$default"
    else
      line="  $name=$(goat_quote "$default")"
      now="${!name-}"
      [ "$now" = "$default" ] || comment="now $(goat_quote "$now")${comment:+; $comment}"
    fi
    if [ -n "$comment" ]; then
      printf '%-40s  # %s\n' "$line" "$comment"
    else
      printf '%s\n' "$line"
    fi
  done < "$1"
}

for _goat_arg in "$@"; do
  case "$_goat_arg" in
    -h | --help)
      goat_help
      exit 0
      ;;
  esac
done
unset _goat_arg
