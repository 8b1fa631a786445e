# bash completion for upkeep, initctl and start/stop/restart/reload/status.
# Made from upkeep's command table (src/manual/completions.rs); do not edit.

_upkeep_jobs() {
    local sock=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --socket) sock=(--socket "${COMP_WORDS[i + 1]}") ;;
            --socket=*) sock=("${COMP_WORDS[i]}") ;;
        esac
    done
    upkeep list "${sock[@]}" 2>/dev/null | awk '!/^\t/ { print $1 }'
}

_upkeep() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]##*/} cmd= i
    case $prog in
        start | stop | restart | reload | status) cmd=$prog ;;
        *)
            for ((i = 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                    --socket) ((i++)) ;;
                    -*) ;;
                    *) cmd=${COMP_WORDS[i]}; break ;;
                esac
            done
            ;;
    esac
    local opts= paths= values= jobs=
    case $cmd in
        '')
            COMPREPLY=($(compgen -W "daemon start stop restart reload status list monitor top web emit reload-configuration re-exec reopen-logs list-env get-env set-env unset-env reset-env log-priority logs check-config show-config version --socket --help" -- "$cur"))
            [[ $prev == --socket ]] && COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        daemon)
            opts="--conf-dir --log-dir --socket --run-dir --runlevel --init --forward-hup --no-cgroups --exit-with --clean-env --pass-env --log-to-stdout --log-format --log-size --log-keep --log-rotate --log-compress --log-timestamps --control-group --verbose -v --help" paths="--conf-dir --log-dir --socket --run-dir" values="--runlevel --exit-with --pass-env --log-format --log-size --log-keep --log-rotate --log-compress --log-timestamps --control-group" jobs=
            ;;
        start)
            opts="--no-wait -n --json --quiet -q --socket --help" paths="--socket" values="" jobs=1
            ;;
        stop)
            opts="--no-wait -n --json --quiet -q --socket --help" paths="--socket" values="" jobs=1
            ;;
        restart)
            opts="--no-wait -n --json --quiet -q --socket --help" paths="--socket" values="" jobs=1
            ;;
        reload)
            opts="--quiet -q --socket --help" paths="--socket" values="" jobs=1
            ;;
        status)
            opts="--json --quiet -q --socket --help" paths="--socket" values="" jobs=1
            ;;
        list)
            opts="--json --costs --quiet -q --socket --help" paths="--socket" values="" jobs=
            ;;
        monitor)
            opts="--json --socket --help" paths="--socket" values="" jobs=
            ;;
        top)
            opts="--sort -s --interval -d --json --socket --help" paths="--socket" values="--sort -s --interval -d" jobs=
            ;;
        web)
            opts="--listen --token-file --read-only --allow-host --socket --help" paths="--socket" values="--listen --token-file --allow-host" jobs=
            ;;
        emit)
            opts="--no-wait -n --quiet -q --socket --help" paths="--socket" values="" jobs=
            ;;
        reload-configuration)
            opts="--quiet -q --socket --help" paths="--socket" values="" jobs=
            ;;
        re-exec)
            opts="--quiet -q --socket --help" paths="--socket" values="" jobs=
            ;;
        reopen-logs)
            opts="--quiet -q --socket --help" paths="--socket" values="" jobs=
            ;;
        list-env)
            opts="--global -g --socket --help" paths="--socket" values="" jobs=
            ;;
        get-env)
            opts="--global -g --socket --help" paths="--socket" values="" jobs=
            ;;
        set-env)
            opts="--retain -r --global -g --socket --help" paths="--socket" values="" jobs=
            ;;
        unset-env)
            opts="--global -g --socket --help" paths="--socket" values="" jobs=
            ;;
        reset-env)
            opts="--global -g --socket --help" paths="--socket" values="" jobs=
            ;;
        log-priority)
            opts="--socket --help" paths="--socket" values="" jobs=
            ;;
        logs)
            opts="--lines -n --follow -f --socket --help" paths="--socket" values="--lines -n" jobs=1
            ;;
        check-config)
            opts="--conf-dir --ignore-events -i --warn -w --help" paths="--conf-dir" values="--ignore-events -i" jobs=1
            ;;
        show-config)
            opts="--conf-dir --json --enumerate -e --help" paths="--conf-dir" values="" jobs=1
            ;;
        version)
            opts="--handover-formats --socket --help" paths="--socket" values="" jobs=
            ;;
        *) return ;;
    esac
    if [[ " $paths " == *" $prev "* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ " $values " == *" $prev "* ]]; then
        COMPREPLY=()
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ -n $jobs ]]; then
        COMPREPLY=($(compgen -W "$(_upkeep_jobs)" -- "$cur"))
    fi
}
complete -F _upkeep upkeep initctl start stop restart reload status
