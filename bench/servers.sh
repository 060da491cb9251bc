# The interface of bench/lib.sh's serve/unserve that bench/write-bench.sh
# uses (sourced): start and stop one server on the image $img, with its
# socket and log in $tmp.
#
#   start ours|qemu   nbdkit with $plugin (the qcow2 plugin), or
#                     qemu-nbd --shared=0 -f qcow2; sets uri and server_pid
#   stop              SIGTERM; the server must exit cleanly, else its
#                     log is printed and the script exits

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
declare -gA nbd_uri=() spid=()

start ()
{
    case "$1" in
    ours) serve ours ours "$img" ;;
    qemu) serve qemu qemu -f qcow2 "$img" ;;
    esac
    server_name=$1
    server_pid=${spid[$1]}
    uri=${nbd_uri[$1]}
}

stop ()
{
    unserve "$server_name"
    server_pid=
}
