# Shared by the write benchmarks (sourced): start and stop one server
# on the image $img, with its socket and log in $tmp.
#
#   start ours|qemu   nbdkit with $plugin (the qcow2 plugin), or
#                     qemu-nbd --shared=0; sets uri and server_pid
#   stop              SIGTERM; the server must exit cleanly, else its
#                     log is printed and the script exits

# start SERVER: serve $img read-write on $tmp/SERVER.sock; sets uri.
start ()
{
    local s=$1 i
    rm -f "$tmp/$s.sock" "$tmp/$s.pid"
    case "$s" in
    ours)
        nbdkit -f -U "$tmp/$s.sock" --pidfile "$tmp/$s.pid" \
            "$plugin" file="$img" >"$tmp/$s.log" 2>&1 &
        ;;
    qemu)
        qemu-nbd --shared=0 -f qcow2 --persistent -k "$tmp/$s.sock" \
            --pid-file="$tmp/$s.pid" "$img" >"$tmp/$s.log" 2>&1 &
        ;;
    esac
    server_pid=$!
    for ((i = 0; i < 100; i++)); do
        test -S "$tmp/$s.sock" && test -s "$tmp/$s.pid" && break
        sleep 0.1
    done
    test -s "$tmp/$s.pid" || { cat "$tmp/$s.log" >&2; exit 1; }
    uri="nbd+unix:///?socket=$tmp/$s.sock"
}

# stop: SIGTERM, and the server must exit cleanly.
stop ()
{
    kill "$server_pid"
    if ! wait "$server_pid"; then
        echo "$0: the server failed:" >&2
        cat "$tmp"/*.log >&2
        exit 1
    fi
    server_pid=
}
