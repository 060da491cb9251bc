/* LUKS1 on-disk header (LUKS1 spec section 2.1).  Big-endian. */
#ifndef LUKS1_H
#define LUKS1_H

#define LUKS1_HDR_SIZE 592
#define LUKS1_OFF_VERSION 6
#define LUKS1_OFF_CIPHER_NAME 8
#define LUKS1_OFF_CIPHER_MODE 40
#define LUKS1_OFF_HASH_SPEC 72
#define LUKS1_OFF_PAYLOAD_OFFSET 104    /* u32, in 512-byte sectors */
#define LUKS1_OFF_KEY_BYTES 108
#define LUKS1_OFF_MK_DIGEST 112
#define LUKS1_OFF_MK_DIGEST_SALT 132
#define LUKS1_OFF_MK_DIGEST_ITER 164
#define LUKS1_OFF_UUID 168
#define LUKS1_OFF_KEYSLOTS 208
#define LUKS1_STRING_LEN 32
#define LUKS1_UUID_LEN 40
#define LUKS1_DIGEST_LEN 20
#define LUKS1_SALT_LEN 32

#define LUKS1_NUM_KEYSLOTS 8
#define LUKS1_KEYSLOT_SIZE 48
#define LUKS1_KS_OFF_ACTIVE 0
#define LUKS1_KS_OFF_ITERATIONS 4
#define LUKS1_KS_OFF_SALT 8
#define LUKS1_KS_OFF_MATERIAL 40        /* u32, in 512-byte sectors */
#define LUKS1_KS_OFF_STRIPES 44

#define LUKS1_KEY_ENABLED 0x00AC71F3
#define LUKS1_KEY_DISABLED 0x0000DEAD

/* Key material of slot 0 starts here (cryptsetup and QEMU alike). */
#define LUKS1_KEY_AREA_START 4096
#define LUKS1_KEY_AREA_ALIGN 4096

#endif /* LUKS1_H */
