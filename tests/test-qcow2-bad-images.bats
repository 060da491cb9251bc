#!/usr/bin/env bats
# Hostile images: good images made by qemu-img with one field spoiled by
# tests/make-bad-images.py.  A bad header must stop nbdkit at start-up
# with one message naming the field; a bad L1 or L2 entry must fail the
# reads that need it with EIO and a message, while the rest of the image
# still reads and the server stays up.  Never a crash, a hang or a
# sanitizer report (teardown checks those).

load "${FUNCTIONS_SH:-$BATS_TEST_DIRNAME/functions.sh}"
load "$BATS_TEST_DIRNAME/bad-image-functions.bash"

setup_file ()
{
    make_bad_images "$BATS_FILE_TMPDIR"
}

# The bad images differ from these in one field only.
@test "bad images: the good originals open and read like qemu" {
    for img in "$GOOD_V3" "$GOOD_EXTL2" "$GOOD_V2"; do
        start_nbdkit -r "$QCOW2_PLUGIN" file="$img"
        copy_export "$uri" "$BATS_TEST_TMPDIR/ours"
        qemu-img convert -O raw "$img" "$BATS_TEST_TMPDIR/ref"
        cmp "$BATS_TEST_TMPDIR/ours" "$BATS_TEST_TMPDIR/ref"
    done
}

@test "bad images: every crafted image has a test here" {
    [ "$(wc -l < "$BATS_FILE_TMPDIR/bad-images.list")" -ge 20 ]
    while read -r name; do
        grep -Eq "^@test .*\{ *(refused_at_open|read_fails[a-z0-9_]*) $name " \
             "$BATS_TEST_FILENAME" || { echo "no test for $name"; false; }
    done < "$BATS_FILE_TMPDIR/bad-images.list"
}

@test "bad images: a file that does not exist" {
    assert_startup_refused --partial 'missing.qcow2: No such file or directory' \
        -r "$QCOW2_PLUGIN" file="$BATS_TEST_TMPDIR/missing.qcow2"
}

@test "bad images: a directory" {
    assert_startup_refused --partial 'Is a directory' \
        -r "$QCOW2_PLUGIN" file="$BATS_TEST_TMPDIR"
}

# --- the header ---
@test "bad header: magic" { refused_at_open magic 'bad magic'; }
@test "bad header: version 1 (read as qcow v1, whose fields are then wrong)" { refused_at_open version-1 'invalid qcow version 1 header: cluster size'; }
@test "bad header: version 4" { refused_at_open version-4 'version 4 is not supported'; }
@test "bad header: cluster_bits 8" { refused_at_open cluster-bits-8 'cluster_bits 8 is out of range'; }
@test "bad header: cluster_bits 22" { refused_at_open cluster-bits-22 'cluster_bits 22 is out of range'; }
@test "bad header: cluster_bits 2^32-1" { refused_at_open cluster-bits-huge 'cluster_bits 4294967295 is out of range'; }
@test "bad header: header_length 96 < 104" { refused_at_open header-length-96 'header_length 96 is invalid'; }
@test "bad header: header_length 108 not a multiple of 8" { refused_at_open header-length-108 'header_length 108 is invalid'; }
@test "bad header: header_length beyond the first cluster" { refused_at_open header-length-past-cluster 'header_length 4104 is larger than a cluster'; }
@test "bad header: header_length 2^32-8" { refused_at_open header-length-huge 'header_length 4294967288 is larger than a cluster'; }
@test "bad header: empty file" { refused_at_open empty-file 'too short'; }
@test "bad header: file cut at 50 bytes" { refused_at_open truncated-header 'too short'; }
@test "bad header: v3 file cut inside the header" { refused_at_open truncated-v3-header 'too short \(100 bytes\) for a version 3'; }
@test "bad header: size near 2^64" { refused_at_open size-near-2-64 'L1 table is too small.*virtual size 18446744073709551104'; }
@test "bad header: size 2^63" { refused_at_open size-2-63 'L1 table is too small.*virtual size 9223372036854775808'; }
@test "bad header: l1_size 0" { refused_at_open l1-size-0 'L1 table is too small: l1_size 0'; }
@test "bad header: l1_size too small for the size" { refused_at_open l1-size-too-small 'L1 table is too small: l1_size 3'; }
@test "bad header: l1_size * 8 overflows 32 bits" { refused_at_open l1-size-times-8-overflows 'l1_size 536870912 is too large'; }
@test "bad header: l1_size 2^32-1" { refused_at_open l1-size-max 'l1_size 4294967295 is too large'; }
@test "bad header: L1 table running past the end of the file" { refused_at_open l1-size-past-eof 'L1 table .*beyond the end of the file'; }
@test "bad header: l1_table_offset unaligned" { refused_at_open l1-offset-unaligned 'L1 table offset 0x[0-9a-f]+ is not aligned'; }
@test "bad header: l1_table_offset past the end of the file" { refused_at_open l1-offset-past-eof 'L1 table .*beyond the end of the file'; }
@test "bad header: l1_table_offset 0 (the header)" { refused_at_open l1-offset-0 'L1 table overlaps the header'; }
@test "bad header: l1_table_offset + length overflows" { refused_at_open l1-offset-overflow 'L1 table .*beyond the end of the file'; }
@test "bad header: refcount_table_offset unaligned" { refused_at_open refcount-table-offset-unaligned 'refcount table offset 0x[0-9a-f]+ is not aligned'; }
@test "bad header: refcount_table_offset past the end of the file" { refused_at_open refcount-table-offset-past-eof 'refcount table .*beyond the end of the file'; }
@test "bad header: refcount_table_clusters 0" { refused_at_open refcount-table-clusters-0 'refcount_table_clusters is 0'; }
@test "bad header: refcount_table_clusters 2^32-1" { refused_at_open refcount-table-clusters-huge 'refcount table is too large \(4294967295 clusters\)'; }
@test "bad header: refcount_order 7" { refused_at_open refcount-order-7 'refcount_order 7 is out of range'; }
@test "bad header: nb_snapshots 2^32-1" { refused_at_open nb-snapshots-huge 'nb_snapshots 4294967295 is too large'; }
@test "bad header: snapshots_offset unaligned" { refused_at_open snapshots-offset-unaligned 'snapshot table offset 0x[0-9a-f]+ is not aligned'; }
@test "bad header: snapshots_offset past the end of the file" { refused_at_open snapshots-offset-past-eof 'snapshot table .*beyond the end of the file'; }
@test "bad header: unknown incompatible feature bit 5" { refused_at_open incompatible-bit-5 'unsupported incompatible feature bit 5'; }
@test "bad header: unknown incompatible feature bit 63" { refused_at_open incompatible-bit-63 'unsupported incompatible feature bit 63'; }
@test "bad header: crypt_method 3" { refused_at_open crypt-method-3 'crypt_method 3 is unknown'; }
@test "bad header: crypt_method 2 without the encryption header extension" { refused_at_open luks-without-header-extension 'encryption header extension is missing'; }
@test "bad header: compression_type 2" { refused_at_open compression-type-2 'compression_type 2 is unknown'; }
@test "bad header: compression_type 1 without its feature bit" { refused_at_open compression-type-without-bit 'compression_type 1 does not agree'; }
@test "bad header: extended L2 with 4 KiB clusters" { refused_at_open extended-l2-small-clusters 'extended L2 entries need clusters of at least 16 KiB'; }
@test "bad header: backing_file_size 1024" { refused_at_open backing-file-size-1024 'backing_file_size 1024 is too large'; }
@test "bad header: backing file name beyond the first cluster" { refused_at_open backing-file-past-cluster 'backing file name .*not inside the header cluster'; }
@test "bad header: extension length runs past the cluster" { refused_at_open header-extension-past-cluster 'header extension 0x12345678 .*runs past'; }
@test "bad header: v2 extension length runs past the cluster" { refused_at_open header-extension-v2-past-cluster 'header extension 0x12345678 .*runs past'; }
@test "bad header: encryption header extension of length 8" { refused_at_open crypto-extension-length-8 'encryption header extension has length 8'; }

# --- L1 entries: guest 2 MiB is mapped by L1[1]; guest 0 stays readable ---
@test "bad L1 entry: reserved bit 0" { read_fails_l1 l1-entry-reserved-bit-0 'L1 entry 1 .*has reserved bits set'; }
@test "bad L1 entry: reserved bit 56" { read_fails_l1 l1-entry-reserved-bit-56 'L1 entry 1 .*has reserved bits set'; }
@test "bad L1 entry: L2 table offset unaligned" { read_fails_l1 l1-entry-unaligned 'L2 table offset 0x[0-9a-f]+ in L1 entry 1 is not cluster-aligned'; }
@test "bad L1 entry: L2 table offset past the end of the file" { read_fails_l1 l1-entry-past-eof 'L2 table offset 0x[0-9a-f]+ in L1 entry 1 is beyond the end of the file'; }

# --- L2 entries: guest 64 KiB is spoiled; guest 0 stays readable ---
@test "bad L2 entry: reserved bit 1" { read_fails_l2 l2-entry-reserved-bit-1 'L2 entry 0x[0-9a-f]+ at 0x[0-9a-f]+ has reserved bits set'; }
@test "bad L2 entry: reserved bit 61" { read_fails_l2 l2-entry-reserved-bit-61 'L2 entry 0x[0-9a-f]+ at 0x[0-9a-f]+ has reserved bits set'; }
@test "bad L2 entry: data offset unaligned" { read_fails_l2 l2-entry-unaligned 'data cluster offset 0x[0-9a-f]+ .*is not cluster-aligned'; }
@test "bad L2 entry: data offset past the end of the file" { read_fails_l2 l2-entry-past-eof 'data cluster offset 0x[0-9a-f]+ .*is beyond the end of the file'; }
@test "bad L2 entry: data offset at the end of the file" { read_fails_l2 l2-entry-at-eof 'data cluster offset 0x[0-9a-f]+ .*is beyond the end of the file'; }
@test "bad L2 entry: compressed cluster that is not deflate data" { read_fails_payload l2-entry-compressed-garbage 65536 0 "$GOOD_V3_RAW" '[Cc]ompress|[Ii]nflate|[Dd]eflate'; }

# --- extended L2 subcluster bitmaps ---
@test "bad extended L2 entry: subclusters both allocated and zero" { read_fails_extl2 extl2-alloc-and-zero 65536 'both allocated and zero'; }
@test "bad extended L2 entry: allocated subclusters without a cluster" { read_fails_extl2 extl2-alloc-without-cluster 131072 'allocated subclusters but no cluster'; }
