// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {BatchHeader, CompactSignature, KeyType, DeviceStatus, GatewayInfo} from "./VigilTypes.sol";

/**
 * @title VigilRegistry
 * @notice Device registry of Vigil: roles, gateways and their signing keys, sensor nodes, batch anchoring
 * (a per-gateway hash chain of EIP-712 signed batch headers), leaf-inclusion verification for other
 * contracts, and reader access grants for MQTT subscribers.
 *
 * The contract is deliberately NOT upgradeable (see contracts/README.md): a new version is a new
 * deployment to which gateways are re-registered.
 *
 * Head chain: `head_0 = 0`, `head_n = keccak256(abi.encode(head_{n-1}, hashStruct(header_n)))`.
 * Only the latest head and seq are stored per gateway (no storage slot per batch, to stay within the
 * gas budget); the root, header hash and new head are emitted in {BatchAnchored}. Inclusion of an older
 * batch is proven by replaying the chain from that header to the stored head or to a {checkpoint}.
 */
contract VigilRegistry is AccessControlDefaultAdminRules, EIP712 {
    // ------------------------------------------------------------------ constants

    /// @notice EIP-712 type hash of {BatchHeader}.
    bytes32 public constant BATCH_HEADER_TYPEHASH = keccak256(
        "BatchHeader(bytes32 gatewayId,uint64 seq,bytes32 prevHead,bytes32 root,uint32 leafCount,uint64 firstTimestamp,uint64 lastTimestamp,bytes32 modelHash)"
    );
    /// @notice EIP-712 type hash of a key rotation authorised by the gateway's current key.
    bytes32 public constant KEY_ROTATION_TYPEHASH =
        keccak256("KeyRotation(bytes32 gatewayId,uint8 keyType,bytes publicKey,uint16 keyEpoch)");

    /// @notice Global read access to every gateway (auditors, regulators).
    bytes32 public constant AUDITOR_ROLE = keccak256("VIGIL_AUDITOR");
    /// @notice May propose releases in {VigilReleases}.
    bytes32 public constant RELEASE_MANAGER_ROLE = keccak256("VIGIL_RELEASE_MANAGER");
    /// @notice May approve releases in {VigilReleases}.
    bytes32 public constant RELEASE_APPROVER_ROLE = keccak256("VIGIL_RELEASE_APPROVER");
    /// @dev Prefix of the per-site operator roles, see {operatorRole}.
    bytes32 private constant _OPERATOR_PREFIX = keccak256("VIGIL_OPERATOR");

    /// @dev P-256 group order / 2: signatures with a larger `s` are malleable and rejected.
    uint256 private constant _P256_HALF_N = 0x7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8;
    /// @dev secp256k1 group order / 2 (as in OpenZeppelin's ECDSA).
    uint256 private constant _SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 private constant _S_MASK = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;
    uint256 private constant _MAX_URI_LENGTH = 512;
    uint256 private constant _MAX_SENSOR_KEY_LENGTH = 128;

    // ------------------------------------------------------------------ storage

    struct Gateway {
        // slot 0 (read and written by every anchor)
        address signer; // secp256k1 key as an address; zero for P-256
        uint64 seq; // last anchored batch sequence, 0 = none yet
        DeviceStatus status;
        KeyType keyType;
        uint16 keyEpoch; // bumped on every rotation; binds old-key rotation signatures
        // slot 1 (read and written by every anchor)
        bytes32 head;
        // slots 2-3, P-256 only
        bytes32 p256x;
        bytes32 p256y;
        bytes32 site;
        string metadataURI;
    }

    struct Sensor {
        DeviceStatus status;
        KeyType keyType;
        bytes publicKey;
    }

    mapping(bytes32 gatewayId => Gateway) private _gateways;
    mapping(bytes32 gatewayId => mapping(uint32 sensorId => Sensor)) private _sensors;
    mapping(bytes32 gatewayId => mapping(uint64 seq => bytes32 head)) private _checkpoints;
    mapping(bytes32 site => mapping(address reader => uint64 expiresAt)) private _siteAccess;
    mapping(bytes32 gatewayId => mapping(address reader => uint64 expiresAt)) private _gatewayAccess;

    // ------------------------------------------------------------------ events

    /// @notice A gateway was registered at `site` with its signing key.
    event GatewayRegistered(
        bytes32 indexed gatewayId, bytes32 indexed site, KeyType keyType, bytes publicKey, string metadataURI
    );
    /// @notice The gateway's signing key was replaced; `keyEpoch` is the new epoch.
    event GatewayKeyRotated(bytes32 indexed gatewayId, uint16 keyEpoch, KeyType keyType, bytes publicKey, bool byOldKey);
    /// @notice The gateway's metadata URI changed.
    event GatewayMetadataUpdated(bytes32 indexed gatewayId, string metadataURI);
    /// @notice The gateway's status changed (Active, Suspended, or the final Revoked).
    event GatewayStatusChanged(bytes32 indexed gatewayId, DeviceStatus status);
    /// @notice A sensor node was registered under a gateway.
    event SensorRegistered(bytes32 indexed gatewayId, uint32 indexed sensorId, KeyType keyType, bytes publicKey);
    /// @notice A sensor node's key changed.
    event SensorKeyChanged(bytes32 indexed gatewayId, uint32 indexed sensorId, KeyType keyType, bytes publicKey);
    /// @notice A sensor node's status changed.
    event SensorStatusChanged(bytes32 indexed gatewayId, uint32 indexed sensorId, DeviceStatus status);
    /// @notice Batch `seq` of `gatewayId` was anchored; `headerHash` is its EIP-712 struct hash.
    event BatchAnchored(
        bytes32 indexed gatewayId, uint64 indexed seq, bytes32 indexed root, bytes32 headerHash, bytes32 head
    );
    /// @notice The head of `gatewayId` at `seq` was stored for later inclusion proofs.
    event HeadCheckpointed(bytes32 indexed gatewayId, uint64 indexed seq, bytes32 head);
    /// @notice `reader` may read every gateway of `site` until `expiresAt` (unix seconds).
    event SiteAccessGranted(bytes32 indexed site, address indexed reader, uint64 expiresAt);
    /// @notice `reader` lost its site grant.
    event SiteAccessRevoked(bytes32 indexed site, address indexed reader);
    /// @notice `reader` may read `gatewayId` until `expiresAt` (unix seconds).
    event GatewayAccessGranted(bytes32 indexed gatewayId, address indexed reader, uint64 expiresAt);
    /// @notice `reader` lost its gateway grant.
    event GatewayAccessRevoked(bytes32 indexed gatewayId, address indexed reader);

    // ------------------------------------------------------------------ errors

    /// @notice `account` lacks the operator role of `site`.
    error NotSiteOperator(address account, bytes32 site);
    /// @notice A zero gateway id or site was given.
    error ZeroId();
    /// @notice `gatewayId` is already registered.
    error GatewayAlreadyRegistered(bytes32 gatewayId);
    /// @notice `gatewayId` is not registered.
    error GatewayUnknown(bytes32 gatewayId);
    /// @notice The gateway is not Active (anchoring, old-key rotation) — `status` tells why.
    error GatewayNotActive(bytes32 gatewayId, DeviceStatus status);
    /// @notice The gateway is revoked; revocation is final.
    error GatewayRevoked(bytes32 gatewayId);
    /// @notice The requested status change is not allowed from `current`.
    error InvalidStatusTransition(DeviceStatus current, DeviceStatus requested);
    /// @notice The public key does not match its key type (20-byte address, 64-byte P-256 point on the curve).
    error InvalidPublicKey(KeyType keyType, bytes publicKey);
    /// @notice A URI or key is longer than allowed.
    error TooLong(uint256 length, uint256 max);
    /// @notice The sensor already exists.
    error SensorAlreadyRegistered(bytes32 gatewayId, uint32 sensorId);
    /// @notice The sensor does not exist.
    error SensorUnknown(bytes32 gatewayId, uint32 sensorId);
    /// @notice The header's sequence is not the gateway's next one (replayed, skipped or zero).
    error UnexpectedSequence(bytes32 gatewayId, uint64 expected, uint64 got);
    /// @notice The header does not extend the gateway's current head.
    error UnexpectedPrevHead(bytes32 gatewayId, bytes32 expected, bytes32 got);
    /// @notice The header's Merkle root is zero.
    error ZeroRoot(bytes32 gatewayId);
    /// @notice The header's leaf count is zero.
    error EmptyBatch(bytes32 gatewayId);
    /// @notice `firstTimestamp` is after `lastTimestamp`.
    error InvalidTimeRange(bytes32 gatewayId, uint64 firstTimestamp, uint64 lastTimestamp);
    /// @notice The signature is not by the gateway's registered key for this chain and contract.
    error InvalidSignature(bytes32 gatewayId);
    /// @notice The signature has `s` in the upper half of the curve order (malleable).
    error MalleableSignature(bytes32 gatewayId);
    /// @notice The signature has the wrong length for the gateway's key type (65 secp256k1, 64 P-256).
    error InvalidSignatureLength(bytes32 gatewayId, uint256 length);
    /// @notice Array arguments differ in length.
    error LengthMismatch(uint256 a, uint256 b);
    /// @notice The gateway has not anchored anything yet.
    error NothingAnchored(bytes32 gatewayId);
    /// @notice The access expiry is not in the future, or the reader is the zero address.
    error InvalidGrant(address reader, uint64 expiresAt);

    // ------------------------------------------------------------------ constructor

    /**
     * @param initialAdminDelay Delay (seconds) of the two-step default-admin handover.
     * @param initialAdmin The first default admin (grants and revokes every role).
     */
    constructor(uint48 initialAdminDelay, address initialAdmin)
        AccessControlDefaultAdminRules(initialAdminDelay, initialAdmin)
        EIP712("VigilRegistry", "1")
    {}

    // ------------------------------------------------------------------ roles

    /**
     * @notice The operator role of `site`: register and manage gateways and sensors of that site and
     * grant read access to them. Granted and revoked by the default admin through {grantRole}.
     * @param site The site id.
     * @return The role id, `keccak256(abi.encode(keccak256("VIGIL_OPERATOR"), site))`.
     */
    function operatorRole(bytes32 site) public pure returns (bytes32) {
        return keccak256(abi.encode(_OPERATOR_PREFIX, site));
    }

    function _onlySiteOperator(bytes32 site) private view {
        if (!hasRole(operatorRole(site), msg.sender)) revert NotSiteOperator(msg.sender, site);
    }

    /// @dev Loads a registered gateway and checks that the caller operates its site.
    function _operated(bytes32 gatewayId) private view returns (Gateway storage g) {
        g = _gateways[gatewayId];
        if (g.status == DeviceStatus.None) revert GatewayUnknown(gatewayId);
        _onlySiteOperator(g.site);
    }

    // ------------------------------------------------------------------ gateways

    /**
     * @notice Registers a gateway at `site` (caller must hold {operatorRole} of `site`).
     * @param gatewayId Non-zero gateway id.
     * @param site Non-zero site id.
     * @param keyType Secp256k1 (publicKey = 20-byte address) or P256 (publicKey = 64-byte x‖y).
     * @param publicKey The signing key in the encoding of `keyType`.
     * @param metadataURI Free metadata URI (≤ 512 bytes).
     */
    function registerGateway(
        bytes32 gatewayId,
        bytes32 site,
        KeyType keyType,
        bytes calldata publicKey,
        string calldata metadataURI
    ) external {
        if (gatewayId == 0 || site == 0) revert ZeroId();
        _onlySiteOperator(site);
        Gateway storage g = _gateways[gatewayId];
        if (g.status != DeviceStatus.None) revert GatewayAlreadyRegistered(gatewayId);
        if (bytes(metadataURI).length > _MAX_URI_LENGTH) revert TooLong(bytes(metadataURI).length, _MAX_URI_LENGTH);
        _setKey(g, keyType, publicKey);
        g.status = DeviceStatus.Active;
        g.site = site;
        g.metadataURI = metadataURI;
        emit GatewayRegistered(gatewayId, site, keyType, publicKey, metadataURI);
    }

    /**
     * @notice Replaces the gateway's signing key (site operator). Allowed while Active or Suspended.
     * @param gatewayId The gateway.
     * @param keyType New key type.
     * @param publicKey New key (see {registerGateway}).
     */
    function rotateGatewayKey(bytes32 gatewayId, KeyType keyType, bytes calldata publicKey) external {
        Gateway storage g = _operated(gatewayId);
        if (g.status == DeviceStatus.Revoked) revert GatewayRevoked(gatewayId);
        _rotate(g, gatewayId, keyType, publicKey, false);
    }

    /**
     * @notice Replaces the gateway's signing key, authorised by an EIP-712 `KeyRotation` signature of the
     * current key (any account may submit). The gateway must be Active. The signature binds the current
     * key epoch, so it cannot be replayed after the rotation.
     * @param gatewayId The gateway.
     * @param keyType New key type.
     * @param publicKey New key (see {registerGateway}).
     * @param signature Signature of the CURRENT key over {keyRotationDigest}.
     */
    function rotateGatewayKeyBySignature(
        bytes32 gatewayId,
        KeyType keyType,
        bytes calldata publicKey,
        bytes calldata signature
    ) external {
        Gateway storage g = _gateways[gatewayId];
        if (g.status != DeviceStatus.Active) revert GatewayNotActive(gatewayId, g.status);
        _requireCode(gatewayId, _checkBytes(g, keyRotationDigest(gatewayId, keyType, publicKey), signature), signature.length);
        _rotate(g, gatewayId, keyType, publicKey, true);
    }

    /**
     * @notice EIP-712 digest the current key signs to authorise {rotateGatewayKeyBySignature}.
     * @param gatewayId The gateway.
     * @param keyType New key type.
     * @param publicKey New key.
     * @return The digest, bound to the gateway's current key epoch.
     */
    function keyRotationDigest(bytes32 gatewayId, KeyType keyType, bytes calldata publicKey)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    KEY_ROTATION_TYPEHASH, gatewayId, uint8(keyType), keccak256(publicKey), _gateways[gatewayId].keyEpoch
                )
            )
        );
    }

    /**
     * @notice Sets the gateway's metadata URI (site operator).
     * @param gatewayId The gateway.
     * @param metadataURI New URI (≤ 512 bytes).
     */
    function setGatewayMetadata(bytes32 gatewayId, string calldata metadataURI) external {
        Gateway storage g = _operated(gatewayId);
        if (g.status == DeviceStatus.Revoked) revert GatewayRevoked(gatewayId);
        if (bytes(metadataURI).length > _MAX_URI_LENGTH) revert TooLong(bytes(metadataURI).length, _MAX_URI_LENGTH);
        g.metadataURI = metadataURI;
        emit GatewayMetadataUpdated(gatewayId, metadataURI);
    }

    /**
     * @notice Suspends an Active gateway (site operator): it cannot anchor until resumed.
     * @param gatewayId The gateway.
     */
    function suspendGateway(bytes32 gatewayId) external {
        _setGatewayStatus(gatewayId, DeviceStatus.Active, DeviceStatus.Suspended);
    }

    /**
     * @notice Resumes a Suspended gateway (site operator).
     * @param gatewayId The gateway.
     */
    function resumeGateway(bytes32 gatewayId) external {
        _setGatewayStatus(gatewayId, DeviceStatus.Suspended, DeviceStatus.Active);
    }

    /**
     * @notice Revokes a gateway (site operator). Immediate and final: it never anchors, rotates or resumes
     * again. Batches anchored before remain provable with {isLeafIncluded}.
     * @param gatewayId The gateway.
     */
    function revokeGateway(bytes32 gatewayId) external {
        Gateway storage g = _operated(gatewayId);
        if (g.status == DeviceStatus.Revoked) revert GatewayRevoked(gatewayId);
        g.status = DeviceStatus.Revoked;
        emit GatewayStatusChanged(gatewayId, DeviceStatus.Revoked);
    }

    function _setGatewayStatus(bytes32 gatewayId, DeviceStatus from, DeviceStatus to) private {
        Gateway storage g = _operated(gatewayId);
        if (g.status != from) revert InvalidStatusTransition(g.status, to);
        g.status = to;
        emit GatewayStatusChanged(gatewayId, to);
    }

    function _rotate(Gateway storage g, bytes32 gatewayId, KeyType keyType, bytes calldata publicKey, bool byOldKey)
        private
    {
        _setKey(g, keyType, publicKey);
        uint16 epoch = g.keyEpoch + 1; // checked: reverts after 65535 rotations of one gateway
        g.keyEpoch = epoch;
        emit GatewayKeyRotated(gatewayId, epoch, keyType, publicKey, byOldKey);
    }

    function _setKey(Gateway storage g, KeyType keyType, bytes calldata publicKey) private {
        if (keyType == KeyType.Secp256k1 && publicKey.length == 20) {
            address a = address(bytes20(publicKey));
            if (a == address(0)) revert InvalidPublicKey(keyType, publicKey);
            g.signer = a;
            g.p256x = 0;
            g.p256y = 0;
        } else if (keyType == KeyType.P256 && publicKey.length == 64) {
            bytes32 x = bytes32(publicKey[0:32]);
            bytes32 y = bytes32(publicKey[32:64]);
            if (!P256.isValidPublicKey(x, y)) revert InvalidPublicKey(keyType, publicKey);
            g.signer = address(0);
            g.p256x = x;
            g.p256y = y;
        } else {
            revert InvalidPublicKey(keyType, publicKey);
        }
        g.keyType = keyType;
    }

    // ------------------------------------------------------------------ sensor nodes

    /**
     * @notice Registers sensor node `sensorId` under a non-revoked gateway (site operator).
     * @param gatewayId The gateway the sensor is wired to.
     * @param sensorId The sensor's id within the gateway.
     * @param keyType None (no key; publicKey empty) or the type of `publicKey`.
     * @param publicKey Optional key (≤ 128 bytes), stored as given.
     */
    function registerSensor(bytes32 gatewayId, uint32 sensorId, KeyType keyType, bytes calldata publicKey) external {
        Gateway storage g = _operated(gatewayId);
        if (g.status == DeviceStatus.Revoked) revert GatewayRevoked(gatewayId);
        Sensor storage s = _sensors[gatewayId][sensorId];
        if (s.status != DeviceStatus.None) revert SensorAlreadyRegistered(gatewayId, sensorId);
        _setSensorKey(s, keyType, publicKey);
        s.status = DeviceStatus.Active;
        emit SensorRegistered(gatewayId, sensorId, keyType, publicKey);
    }

    /**
     * @notice Replaces a non-revoked sensor's key (site operator).
     * @param gatewayId The gateway.
     * @param sensorId The sensor.
     * @param keyType New key type (None clears the key).
     * @param publicKey New key.
     */
    function setSensorKey(bytes32 gatewayId, uint32 sensorId, KeyType keyType, bytes calldata publicKey) external {
        _operated(gatewayId);
        Sensor storage s = _sensors[gatewayId][sensorId];
        if (s.status == DeviceStatus.None) revert SensorUnknown(gatewayId, sensorId);
        if (s.status == DeviceStatus.Revoked) revert InvalidStatusTransition(s.status, s.status);
        _setSensorKey(s, keyType, publicKey);
        emit SensorKeyChanged(gatewayId, sensorId, keyType, publicKey);
    }

    /**
     * @notice Changes a sensor's status (site operator): Active ⇄ Suspended, or either → Revoked (final).
     * @param gatewayId The gateway.
     * @param sensorId The sensor.
     * @param status The new status.
     */
    function setSensorStatus(bytes32 gatewayId, uint32 sensorId, DeviceStatus status) external {
        _operated(gatewayId);
        Sensor storage s = _sensors[gatewayId][sensorId];
        DeviceStatus cur = s.status;
        if (cur == DeviceStatus.None) revert SensorUnknown(gatewayId, sensorId);
        if (cur == DeviceStatus.Revoked || status == DeviceStatus.None || status == cur) {
            revert InvalidStatusTransition(cur, status);
        }
        s.status = status;
        emit SensorStatusChanged(gatewayId, sensorId, status);
    }

    function _setSensorKey(Sensor storage s, KeyType keyType, bytes calldata publicKey) private {
        if (publicKey.length > _MAX_SENSOR_KEY_LENGTH) revert TooLong(publicKey.length, _MAX_SENSOR_KEY_LENGTH);
        if ((keyType == KeyType.None) != (publicKey.length == 0)) revert InvalidPublicKey(keyType, publicKey);
        s.keyType = keyType;
        s.publicKey = publicKey;
    }

    // ------------------------------------------------------------------ anchoring

    /**
     * @notice Anchors one batch. Any account may submit: the EIP-712 signature of the gateway's registered
     * key is the authority.
     * @dev Checks, in order: gateway Active, `seq` = stored seq + 1, `prevHead` = stored head, non-zero
     * root, non-zero leaf count, time range, signature. Then stores the new head and emits {BatchAnchored}.
     * The signature is passed as two words (see {CompactSignature}) rather than `bytes`: that saves the
     * offset, length and padding words of calldata: 432 gas per secp256k1 anchor at EIP-2028 prices (96
     * bytes, 92 of them zero: the offset 0x120 has two non-zero bytes, the length and `v` one each), 292
     * for P-256 (64 bytes, 61 zero), plus the decoding of a dynamic `bytes` argument.
     * @param header The batch header.
     * @param signature The gateway's signature over {batchDigest}(header).
     * @return newHead `keccak256(abi.encode(header.prevHead, hashBatchHeader(header)))`.
     */
    function anchor(BatchHeader calldata header, CompactSignature calldata signature) external returns (bytes32 newHead) {
        return _anchor(header, signature);
    }

    /**
     * @notice Anchors several batches (of one or several gateways) in one transaction, in order.
     * Reverts entirely if any batch is rejected.
     * @param headers The batch headers, consecutive per gateway.
     * @param signatures One signature per header.
     */
    function anchorMany(BatchHeader[] calldata headers, CompactSignature[] calldata signatures) external {
        if (headers.length != signatures.length) revert LengthMismatch(headers.length, signatures.length);
        for (uint256 i = 0; i < headers.length; ++i) {
            _anchor(headers[i], signatures[i]);
        }
    }

    function _anchor(BatchHeader calldata h, CompactSignature calldata signature) private returns (bytes32 newHead) {
        bytes32 id = h.gatewayId;
        Gateway storage g = _gateways[id];
        if (g.status != DeviceStatus.Active) revert GatewayNotActive(id, g.status);
        uint64 expected = g.seq + 1;
        if (h.seq != expected) revert UnexpectedSequence(id, expected, h.seq);
        bytes32 head = g.head;
        if (h.prevHead != head) revert UnexpectedPrevHead(id, head, h.prevHead);
        if (h.root == 0) revert ZeroRoot(id);
        if (h.leafCount == 0) revert EmptyBatch(id);
        if (h.firstTimestamp > h.lastTimestamp) revert InvalidTimeRange(id, h.firstTimestamp, h.lastTimestamp);
        bytes32 structHash = hashBatchHeader(h);
        _requireCode(id, _checkCompact(g, _hashTypedDataV4(structHash), signature.r, signature.vs), 64);
        newHead = Hashes.efficientKeccak256(head, structHash);
        g.seq = expected;
        g.head = newHead;
        emit BatchAnchored(id, expected, h.root, structHash, newHead);
    }

    /**
     * @notice EIP-712 struct hash of a batch header (`hashStruct`).
     * @param header The header.
     * @return structHash `keccak256(abi.encode(BATCH_HEADER_TYPEHASH, header…))`.
     */
    function hashBatchHeader(BatchHeader calldata header) public pure returns (bytes32 structHash) {
        return keccak256(abi.encode(BATCH_HEADER_TYPEHASH, header));
    }

    /**
     * @notice EIP-712 digest the gateway key signs for {anchor} (bound to this chain and contract).
     * @param header The header.
     * @return The digest.
     */
    function batchDigest(BatchHeader calldata header) external view returns (bytes32) {
        return _hashTypedDataV4(hashBatchHeader(header));
    }

    /**
     * @notice The gateway's last anchored sequence and head.
     * @param gatewayId The gateway.
     * @return seq Last anchored seq (0 = none; the next anchor uses seq + 1).
     * @return head Current head (0 before the first anchor).
     */
    function headOf(bytes32 gatewayId) external view returns (uint64 seq, bytes32 head) {
        Gateway storage g = _gateways[gatewayId];
        return (g.seq, g.head);
    }

    /**
     * @notice Stores the gateway's current head under its current seq so that inclusion proofs of earlier
     * batches can stop there instead of at the (moving) latest head. Anyone may call (and pay ~50k gas).
     * @param gatewayId The gateway.
     */
    function checkpoint(bytes32 gatewayId) external {
        Gateway storage g = _gateways[gatewayId];
        uint64 seq = g.seq;
        if (seq == 0) revert NothingAnchored(gatewayId);
        bytes32 head = g.head;
        _checkpoints[gatewayId][seq] = head;
        emit HeadCheckpointed(gatewayId, seq, head);
    }

    /**
     * @notice The head after batch `seq`, if known on chain: the current head, or a checkpoint.
     * @param gatewayId The gateway.
     * @param seq The sequence.
     * @return The head, or zero if `seq` is neither the latest nor checkpointed.
     */
    function headAt(bytes32 gatewayId, uint64 seq) public view returns (bytes32) {
        Gateway storage g = _gateways[gatewayId];
        if (seq != 0 && seq == g.seq) return g.head;
        return _checkpoints[gatewayId][seq];
    }

    /**
     * @notice Whether `header` was anchored by its gateway. The caller supplies the struct hashes
     * ({hashBatchHeader}, also emitted as `headerHash` in {BatchAnchored}) of the headers that follow it, up
     * to the latest head or to a checkpoint; the view replays the head chain and compares.
     * @dev Costs one keccak per later header; use {checkpoint} to bound it.
     * @param header The anchored header.
     * @param laterHeaderHashes Struct hashes of batches header.seq+1 … header.seq+n, in order.
     * @return True if the replayed chain ends at the head stored for seq header.seq+n.
     */
    function verifyBatch(BatchHeader calldata header, bytes32[] calldata laterHeaderHashes)
        public
        view
        returns (bool)
    {
        if (header.seq == 0) return false;
        uint256 target = uint256(header.seq) + laterHeaderHashes.length;
        if (target > type(uint64).max) return false;
        bytes32 expected = headAt(header.gatewayId, uint64(target));
        if (expected == 0) return false;
        bytes32 acc = Hashes.efficientKeccak256(header.prevHead, hashBatchHeader(header));
        for (uint256 i = 0; i < laterHeaderHashes.length; ++i) {
            acc = Hashes.efficientKeccak256(acc, laterHeaderHashes[i]);
        }
        return acc == expected;
    }

    /**
     * @notice Whether `leaf` (a 32-byte domain-separated leaf hash, never a raw 64-byte leaf) is included
     * in batch `header` anchored by `header.gatewayId`: an OpenZeppelin {MerkleProof} (sorted-pair
     * keccak256) against `header.root`, plus {verifyBatch}.
     * NOTE: says nothing about the gateway's current status; check {getGateway} if a later revocation
     * matters to the caller.
     * @param header The anchored header.
     * @param laterHeaderHashes See {verifyBatch}.
     * @param leaf The leaf hash.
     * @param proof The Merkle proof of `leaf` in `header.root`.
     * @return True if included.
     */
    function isLeafIncluded(
        BatchHeader calldata header,
        bytes32[] calldata laterHeaderHashes,
        bytes32 leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return MerkleProof.verifyCalldata(proof, header.root, leaf) && verifyBatch(header, laterHeaderHashes);
    }

    // ------------------------------------------------------------------ signatures

    /// @dev Result codes: 0 valid, 1 invalid, 2 malleable (high s), 3 bad length.
    function _checkCompact(Gateway storage g, bytes32 digest, bytes32 r, bytes32 vs) private view returns (uint256) {
        if (g.keyType == KeyType.Secp256k1) {
            bytes32 s = vs & bytes32(_S_MASK);
            uint8 v = uint8(uint256(vs) >> 255) + 27;
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
            if (err == ECDSA.RecoverError.InvalidSignatureS) return 2;
            return (err == ECDSA.RecoverError.NoError && recovered == g.signer) ? 0 : 1;
        }
        // P-256: `vs` is plain s; any s above n/2 (including a set top bit) is malleable.
        if (uint256(vs) > _P256_HALF_N) return 2;
        return P256.verify(digest, r, vs, g.p256x, g.p256y) ? 0 : 1;
    }

    /// @dev Same as {_checkCompact} for a `bytes` signature: 65-byte r‖s‖v (secp256k1) or 64-byte r‖s (P-256).
    function _checkBytes(Gateway storage g, bytes32 digest, bytes calldata signature) private view returns (uint256) {
        if (g.keyType == KeyType.Secp256k1) {
            if (signature.length != 65) return 3;
            uint256 s = uint256(bytes32(signature[32:64]));
            uint8 v = uint8(signature[64]);
            if (s > _SECP256K1_HALF_N) return 2;
            if (v != 27 && v != 28) return 1;
            return _checkCompact(g, digest, bytes32(signature[0:32]), bytes32(s | (uint256(v - 27) << 255)));
        }
        if (signature.length != 64) return 3;
        return _checkCompact(g, digest, bytes32(signature[0:32]), bytes32(signature[32:64]));
    }

    function _requireCode(bytes32 gatewayId, uint256 code, uint256 length) private pure {
        if (code == 0) return;
        if (code == 2) revert MalleableSignature(gatewayId);
        if (code == 3) revert InvalidSignatureLength(gatewayId, length);
        revert InvalidSignature(gatewayId);
    }

    /**
     * @notice Whether `signature` over `digest` is by the current key of an Active gateway. Never reverts
     * on a bad signature. Used by {VigilReleases} for signed install reports.
     * @param gatewayId The gateway.
     * @param digest The signed 32-byte digest (already EIP-712 hashed by the caller).
     * @param signature 65-byte r‖s‖v (secp256k1) or 64-byte r‖s (P-256), low-s.
     * @return True if valid.
     */
    function isValidGatewaySignature(bytes32 gatewayId, bytes32 digest, bytes calldata signature)
        external
        view
        returns (bool)
    {
        Gateway storage g = _gateways[gatewayId];
        return g.status == DeviceStatus.Active && _checkBytes(g, digest, signature) == 0;
    }

    // ------------------------------------------------------------------ reader access

    /**
     * @notice Grants `reader` read access to every gateway of `site` until `expiresAt` (site operator).
     * Re-granting replaces the expiry.
     * @param site The site.
     * @param reader The reader's address (as used by MQTT subscriber authentication).
     * @param expiresAt Unix seconds, in the future.
     */
    function grantSiteAccess(bytes32 site, address reader, uint64 expiresAt) external {
        _onlySiteOperator(site);
        _checkGrant(reader, expiresAt);
        _siteAccess[site][reader] = expiresAt;
        emit SiteAccessGranted(site, reader, expiresAt);
    }

    /**
     * @notice Revokes a site grant (site operator).
     * @param site The site.
     * @param reader The reader.
     */
    function revokeSiteAccess(bytes32 site, address reader) external {
        _onlySiteOperator(site);
        delete _siteAccess[site][reader];
        emit SiteAccessRevoked(site, reader);
    }

    /**
     * @notice Grants `reader` read access to one gateway until `expiresAt` (operator of its site).
     * @param gatewayId The gateway.
     * @param reader The reader.
     * @param expiresAt Unix seconds, in the future.
     */
    function grantGatewayAccess(bytes32 gatewayId, address reader, uint64 expiresAt) external {
        _operated(gatewayId);
        _checkGrant(reader, expiresAt);
        _gatewayAccess[gatewayId][reader] = expiresAt;
        emit GatewayAccessGranted(gatewayId, reader, expiresAt);
    }

    /**
     * @notice Revokes a gateway grant (operator of its site).
     * @param gatewayId The gateway.
     * @param reader The reader.
     */
    function revokeGatewayAccess(bytes32 gatewayId, address reader) external {
        _operated(gatewayId);
        delete _gatewayAccess[gatewayId][reader];
        emit GatewayAccessRevoked(gatewayId, reader);
    }

    function _checkGrant(address reader, uint64 expiresAt) private view {
        if (reader == address(0) || expiresAt <= block.timestamp) revert InvalidGrant(reader, expiresAt);
    }

    /**
     * @notice Whether `reader` may read (e.g. subscribe over MQTT to) data of `gatewayId` now: it holds
     * {AUDITOR_ROLE}, or an unexpired grant on the gateway or on its site.
     * @param reader The reader.
     * @param gatewayId The gateway.
     * @return True if allowed.
     */
    function isReaderAllowed(address reader, bytes32 gatewayId) external view returns (bool) {
        if (hasRole(AUDITOR_ROLE, reader)) return true;
        Gateway storage g = _gateways[gatewayId];
        if (g.status == DeviceStatus.None) return false;
        return _gatewayAccess[gatewayId][reader] > block.timestamp || _siteAccess[g.site][reader] > block.timestamp;
    }

    /**
     * @notice Expiry of `reader`'s grants.
     * @param reader The reader.
     * @param gatewayId The gateway.
     * @return gatewayExpiry Gateway grant expiry (0 = none).
     * @return siteExpiry Expiry of the grant on the gateway's site (0 = none).
     */
    function accessExpiry(address reader, bytes32 gatewayId)
        external
        view
        returns (uint64 gatewayExpiry, uint64 siteExpiry)
    {
        return (_gatewayAccess[gatewayId][reader], _siteAccess[_gateways[gatewayId].site][reader]);
    }

    // ------------------------------------------------------------------ views

    /**
     * @notice Everything known about a gateway (status None if unknown).
     * @param gatewayId The gateway.
     * @return info The gateway record.
     */
    function getGateway(bytes32 gatewayId) external view returns (GatewayInfo memory info) {
        Gateway storage g = _gateways[gatewayId];
        info = GatewayInfo({
            status: g.status,
            keyType: g.keyType,
            keyEpoch: g.keyEpoch,
            seq: g.seq,
            signer: g.signer,
            p256x: g.p256x,
            p256y: g.p256y,
            head: g.head,
            site: g.site,
            metadataURI: g.metadataURI
        });
    }

    /**
     * @notice A sensor node's status and key.
     * @param gatewayId The gateway.
     * @param sensorId The sensor.
     * @return status Status (None if unknown).
     * @return keyType Key type.
     * @return publicKey Key bytes.
     */
    function getSensor(bytes32 gatewayId, uint32 sensorId)
        external
        view
        returns (DeviceStatus status, KeyType keyType, bytes memory publicKey)
    {
        Sensor storage s = _sensors[gatewayId][sensorId];
        return (s.status, s.keyType, s.publicKey);
    }

    /**
     * @notice The EIP-712 domain separator of this contract on this chain.
     * @return The separator.
     */
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }
}
