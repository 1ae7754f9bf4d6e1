// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @dev A signed batch header. Field order and types are the EIP-712 struct
 * `BatchHeader(bytes32 gatewayId,uint64 seq,bytes32 prevHead,bytes32 root,uint32 leafCount,uint64 firstTimestamp,uint64 lastTimestamp,bytes32 modelHash)`
 * (domain "VigilRegistry", version "1"). Timestamps are microseconds since the Unix epoch.
 * `seq` starts at 1; `prevHead` is the gateway's head before this batch (zero for seq 1).
 */
struct BatchHeader {
    bytes32 gatewayId;
    uint64 seq;
    bytes32 prevHead;
    bytes32 root;
    uint32 leafCount;
    uint64 firstTimestamp;
    uint64 lastTimestamp;
    bytes32 modelHash;
}

/**
 * @dev A signature as two words, used by `anchor` to keep calldata small.
 * - secp256k1: ERC-2098 compact form, `r` and `vs = (v - 27) << 255 | s` (s ≤ n/2).
 * - P-256: `r` and `vs = s` (s ≤ n/2, so the top bit is always clear).
 */
struct CompactSignature {
    bytes32 r;
    bytes32 vs;
}

/// @dev Signature scheme of a registered key. `None` means "no key" (unregistered or sensor without key).
enum KeyType {
    None,
    Secp256k1,
    P256
}

/// @dev Lifecycle of a gateway or sensor node. `Revoked` is final.
enum DeviceStatus {
    None,
    Active,
    Suspended,
    Revoked
}

/// @dev What a release carries.
enum ReleaseKind {
    Model,
    Firmware
}

/// @dev Lifecycle of a release. `Revoked` is final.
enum ReleaseStatus {
    None,
    Proposed,
    Active,
    Revoked
}

/// @dev Read-only view of a gateway, returned by {VigilRegistry-getGateway}.
struct GatewayInfo {
    DeviceStatus status;
    KeyType keyType;
    uint16 keyEpoch;
    uint64 seq;
    address signer;
    bytes32 p256x;
    bytes32 p256y;
    bytes32 head;
    bytes32 site;
    string metadataURI;
}
