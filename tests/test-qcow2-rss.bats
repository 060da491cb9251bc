#!/usr/bin/env bats
# The server's memory with many connections (the plugin manual, LIMITS,
# "Memory"): 64 connections reading at once through a backing chain
# whose L2 tables are 32 times the cache.  The peak RSS above the idle
# server stays within what the manual promises: nbdkit's request
# buffers (16 worker threads per connection, one request each), a
# small allowance per connection for its threads, and l2-cache-size per
# image of the chain.  A fixed number of reads (tests/parallel-reads.py),
# so the figures are counts, not timings.

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"

setup ()
{
    requires qemu-img qemu-io nbdinfo
    skip_if_sanitizers "the sanitizer runtime changes the memory use"
    T=$BATS_TEST_TMPDIR
}

kib_of () { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }

# 1 TiB with 64K clusters: one cluster written in each of the 2048
# regions an L2 table maps (512 MiB each): 128 MiB of L2 tables.
make_chain ()
{
    local cmds=() i
    qemu-img create -q -f qcow2 -o cluster_size=65536 "$T/base.qcow2" 1T
    for ((i = 0; i < 2048; i++)); do
        cmds+=(-c "write -q -P $((i % 255 + 1)) $((i << 29)) 64k")
    done
    qemu-io -f qcow2 "${cmds[@]}" "$T/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2" 1T
    qemu-io -f qcow2 -c "write -q -P 7 $((3 << 29)) 64k" "$T/top.qcow2" >/dev/null
}

@test "rss: 64 connections reading through a chain stay within the documented bound" {
    local conns=64 reqs=64 size=65536 cache=1048576
    make_chain
    start_nbdkit -r "$QCOW2_PLUGIN" file="$T/top.qcow2" l2-cache-size=$cache
    # Start-up reads nothing but the headers and L1 tables.
    nbdinfo --size "$uri" >/dev/null
    local idle
    idle=$(kib_of VmRSS "$nbdkit_pid")

    run /usr/bin/python3 "$BATS_TEST_DIRNAME/parallel-reads.py" "$uri" \
        "$conns" "$reqs" "$size" 16
    assert_success
    assert_output $((conns * reqs * size))
    local peak after1
    peak=$(kib_of VmHWM "$nbdkit_pid")
    after1=$(kib_of VmRSS "$nbdkit_pid")

    # The bound: 16 request buffers per connection, 1 MiB per connection
    # for its threads' stacks and the allocator, a cache per image.
    local bound=$(( (conns * 16 * size + conns * 1048576 + 2 * cache) / 1024 ))
    echo "idle $idle KiB, peak $peak KiB (+$((peak - idle)), bound $bound)," \
         "after $after1 KiB"
    [ $((peak - idle)) -le "$bound" ] ||
        fail "peak RSS grew by $((peak - idle)) KiB, more than $bound KiB"

    # The same reads again: what the first run left (the allocator keeps
    # freed buffers for reuse, a varying amount) and the second run's
    # peak stay within the bound; a buffer kept per request would not.
    run /usr/bin/python3 "$BATS_TEST_DIRNAME/parallel-reads.py" "$uri" \
        "$conns" "$reqs" "$size" 16
    assert_success
    local peak2 after2
    peak2=$(kib_of VmHWM "$nbdkit_pid")
    after2=$(kib_of VmRSS "$nbdkit_pid")
    echo "after a second run: peak $peak2 KiB, now $after2 KiB"
    [ $((peak2 - idle)) -le "$bound" ] ||
        fail "peak RSS over two runs grew by $((peak2 - idle)) KiB, more than $bound KiB"
    [ $((after2 - idle)) -le "$bound" ] ||
        fail "RSS after two runs is $((after2 - idle)) KiB above idle, more than $bound KiB"
}
