// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReleaseKind, ReleaseStatus} from "./VigilTypes.sol";

/// @dev The part of {VigilRegistry} that {VigilReleases} relies on.
interface IVigilRegistryForReleases {
    function hasRole(bytes32 role, address account) external view returns (bool);
    function defaultAdmin() external view returns (address);
    function isValidGatewaySignature(bytes32 gatewayId, bytes32 digest, bytes calldata signature)
        external
        view
        returns (bool);
    function RELEASE_MANAGER_ROLE() external view returns (bytes32);
    function RELEASE_APPROVER_ROLE() external view returns (bytes32);
}

/**
 * @title VigilReleases
 * @notice Model and firmware releases (TUF/Uptane-like): content-addressed (sha256), size-capped, version
 * strictly increasing per (kind, target) by at most {MAX_VERSION_STEP}, proposed by a release manager,
 * activated by M approvals of accounts that hold the approver role at activation, revocable; gateways
 * report what they installed with a signature of their registered key.
 *
 * Approval rule: an approval counts only while its approver holds `RELEASE_APPROVER_ROLE` in the
 * registry. The count is taken when the release would activate — on every {approve}, and on
 * {activate}, which anyone may call to re-check a Proposed release (e.g. after the admin lowered the
 * threshold). Lowering the threshold never activates anything by itself, and approvals of accounts that
 * lost the role never count. Activation is final: revoking an approver afterwards does not deactivate
 * the release (revoke the release for that).
 *
 * Roles and gateway keys live in {VigilRegistry} (one admin, one place to audit roles); this contract
 * is separate to keep each under the 24 KiB code-size limit. Not upgradeable.
 */
contract VigilReleases is EIP712 {
    /// @notice EIP-712 type hash of an install report, signed by the gateway key.
    bytes32 public constant INSTALL_REPORT_TYPEHASH =
        keccak256("InstallReport(bytes32 gatewayId,uint256 releaseId,bytes32 contentHash,uint64 nonce)");

    /// @notice Largest allowed increase of the version over the latest one proposed for the same
    /// (kind, target), 2^32. A release manager can thus never exhaust a version line (2^64 − 1 needs
    /// 2^32 proposals) and block later proposals with `VersionNotIncreasing`; schemes such as
    /// YYYYMMDDNN, unix seconds or major·10^6+minor·10^3+patch fit in one step.
    uint64 public constant MAX_VERSION_STEP = 1 << 32;

    uint256 private constant _MAX_URIS = 8;
    uint256 private constant _MAX_STRING = 512;

    /// @notice Release proposal as submitted by a release manager.
    struct ReleaseInput {
        ReleaseKind kind;
        /// @dev Hardware class and/or site the release is for, e.g. keccak256("hw:rpi4") or a site id.
        bytes32 target;
        uint64 version;
        /// @dev sha256 of the artifact bytes.
        bytes32 contentHash;
        uint64 size;
        /// @dev Model provenance: hash of the training data set (zero for firmware).
        bytes32 trainingDataHash;
        /// @dev https://, ipfs:// or file:// locations of the artifact.
        string[] uris;
        /// @dev Model metrics (compact JSON), or empty.
        string metrics;
    }

    /// @notice A stored release.
    struct Release {
        ReleaseKind kind;
        ReleaseStatus status;
        /// @dev Approvals recorded, including those of accounts that have since lost the approver role
        /// (see {currentApprovals} for the ones that count).
        uint16 approvals;
        uint64 version;
        uint64 size;
        address proposer;
        bytes32 target;
        bytes32 contentHash;
        bytes32 trainingDataHash;
        string[] uris;
        string metrics;
    }

    /// @notice The registry holding roles and gateway keys.
    IVigilRegistryForReleases public immutable registry;
    bytes32 private immutable _managerRole;
    bytes32 private immutable _approverRole;

    uint16 private _threshold;
    uint64 private _maxSize;
    uint256 private _count;
    mapping(uint256 releaseId => Release) private _releases;
    /// @dev The i-th approver of a release, i < Release.approvals (a list, so that approvals can be
    /// recounted against the current role holders).
    mapping(uint256 releaseId => mapping(uint256 index => address approver)) private _approverAt;
    mapping(ReleaseKind => mapping(bytes32 target => uint64)) private _latestVersion;
    /// @dev The highest-version release ever activated per (kind, target), revoked or not; {activeRelease}
    /// reports it only while it is Active.
    mapping(ReleaseKind => mapping(bytes32 target => uint256)) private _highestActivated;
    mapping(bytes32 gatewayId => mapping(ReleaseKind => uint256)) private _installed;
    mapping(bytes32 gatewayId => uint64) private _installNonce;

    /// @notice A release was proposed.
    event ReleaseProposed(
        uint256 indexed releaseId,
        ReleaseKind indexed kind,
        bytes32 indexed target,
        uint64 version,
        bytes32 contentHash,
        uint64 size,
        bytes32 trainingDataHash,
        string[] uris,
        string metrics,
        address proposer
    );
    /// @notice `approver` approved; `approvals` is the number of approvals that count now (by accounts
    /// holding the approver role, this one included).
    event ReleaseApproved(uint256 indexed releaseId, address indexed approver, uint16 approvals);
    /// @notice The release reached the threshold and is now installable.
    event ReleaseActivated(uint256 indexed releaseId, ReleaseKind indexed kind, bytes32 indexed target, uint64 version);
    /// @notice The release was revoked (final); gateways must not install it.
    event ReleaseRevoked(uint256 indexed releaseId, address indexed by, string reason);
    /// @notice The approval threshold changed.
    event ApprovalThresholdChanged(uint16 threshold);
    /// @notice The maximum release size changed.
    event MaxReleaseSizeChanged(uint64 maxSize);
    /// @notice `gatewayId` reported running `releaseId`.
    event InstallReported(
        bytes32 indexed gatewayId, uint256 indexed releaseId, ReleaseKind indexed kind, uint64 version, uint64 nonce
    );

    /// @notice `account` lacks `role` in the registry.
    error MissingRole(address account, bytes32 role);
    /// @notice Only the registry's default admin may do this.
    error NotAdmin(address account);
    /// @notice The version is not above the latest proposed for (kind, target).
    error VersionNotIncreasing(ReleaseKind kind, bytes32 target, uint64 latest, uint64 given);
    /// @notice The version is more than {MAX_VERSION_STEP} above the latest proposed for (kind, target).
    error VersionStepTooLarge(ReleaseKind kind, bytes32 target, uint64 latest, uint64 given);
    /// @notice Zero content hash.
    error ZeroContentHash();
    /// @notice Size zero or above the cap.
    error InvalidSize(uint64 size, uint64 maxSize);
    /// @notice No URI, too many, or one with a scheme other than https://, ipfs://, file://.
    error InvalidUri(uint256 index);
    /// @notice A string is too long.
    error TooLong(uint256 length, uint256 max);
    /// @notice The release does not exist.
    error ReleaseUnknown(uint256 releaseId);
    /// @notice The release is not in the status this action needs.
    error ReleaseNotInStatus(uint256 releaseId, ReleaseStatus status);
    /// @notice `approver` already approved.
    error AlreadyApproved(uint256 releaseId, address approver);
    /// @notice A release manager cannot approve its own proposal (separation of duties).
    error SelfApproval(uint256 releaseId, address approver);
    /// @notice {activate}: only `approvals` approvals by current approvers, below `threshold`.
    error BelowThreshold(uint256 releaseId, uint16 approvals, uint16 threshold);
    /// @notice Threshold must be at least 1.
    error InvalidThreshold(uint16 threshold);
    /// @notice The install report nonce is not the next one.
    error UnexpectedNonce(bytes32 gatewayId, uint64 expected, uint64 got);
    /// @notice The report is not signed by the gateway's current key, or the gateway is not Active.
    error InvalidReportSignature(bytes32 gatewayId);

    /**
     * @param registry_ The {VigilRegistry}.
     * @param threshold Initial approval threshold M (≥ 1).
     * @param maxSize Initial cap on release size in bytes.
     */
    constructor(IVigilRegistryForReleases registry_, uint16 threshold, uint64 maxSize) EIP712("VigilReleases", "1") {
        registry = registry_;
        _managerRole = registry_.RELEASE_MANAGER_ROLE();
        _approverRole = registry_.RELEASE_APPROVER_ROLE();
        _setThreshold(threshold);
        _maxSize = maxSize;
        emit MaxReleaseSizeChanged(maxSize);
    }

    function _requireRole(bytes32 role) private view {
        if (!registry.hasRole(role, msg.sender)) revert MissingRole(msg.sender, role);
    }

    function _requireAdmin() private view {
        if (registry.defaultAdmin() != msg.sender) revert NotAdmin(msg.sender);
    }

    // ------------------------------------------------------------------ admin

    /**
     * @notice Sets M, the number of approvals by current approvers that activates a release (registry
     * default admin). Applies to releases still Proposed at their next {approve} or {activate}; lowering
     * it activates nothing by itself.
     * @param threshold New threshold (≥ 1).
     */
    function setApprovalThreshold(uint16 threshold) external {
        _requireAdmin();
        _setThreshold(threshold);
    }

    function _setThreshold(uint16 threshold) private {
        if (threshold == 0) revert InvalidThreshold(threshold);
        _threshold = threshold;
        emit ApprovalThresholdChanged(threshold);
    }

    /**
     * @notice Sets the size cap for new proposals (registry default admin).
     * @param maxSize Bytes.
     */
    function setMaxReleaseSize(uint64 maxSize) external {
        _requireAdmin();
        _maxSize = maxSize;
        emit MaxReleaseSizeChanged(maxSize);
    }

    // ------------------------------------------------------------------ lifecycle

    /**
     * @notice Proposes a release (release manager). The version must exceed every version proposed before
     * for the same (kind, target), even revoked ones — versions never go backwards —, by at most
     * {MAX_VERSION_STEP}.
     * @param input The release.
     * @return releaseId The new release id (from 1).
     */
    function propose(ReleaseInput calldata input) external returns (uint256 releaseId) {
        _requireRole(_managerRole);
        uint64 latest = _latestVersion[input.kind][input.target];
        if (input.version <= latest) revert VersionNotIncreasing(input.kind, input.target, latest, input.version);
        if (input.version - latest > MAX_VERSION_STEP) {
            revert VersionStepTooLarge(input.kind, input.target, latest, input.version);
        }
        if (input.contentHash == 0) revert ZeroContentHash();
        if (input.size == 0 || input.size > _maxSize) revert InvalidSize(input.size, _maxSize);
        if (input.uris.length == 0 || input.uris.length > _MAX_URIS) revert InvalidUri(input.uris.length);
        for (uint256 i = 0; i < input.uris.length; ++i) {
            if (!_allowedUri(bytes(input.uris[i]))) revert InvalidUri(i);
        }
        if (bytes(input.metrics).length > _MAX_STRING) revert TooLong(bytes(input.metrics).length, _MAX_STRING);

        _latestVersion[input.kind][input.target] = input.version;
        releaseId = ++_count;
        Release storage r = _releases[releaseId];
        r.kind = input.kind;
        r.status = ReleaseStatus.Proposed;
        r.version = input.version;
        r.size = input.size;
        r.proposer = msg.sender;
        r.target = input.target;
        r.contentHash = input.contentHash;
        r.trainingDataHash = input.trainingDataHash;
        for (uint256 i = 0; i < input.uris.length; ++i) {
            r.uris.push(input.uris[i]);
        }
        r.metrics = input.metrics;
        emit ReleaseProposed(
            releaseId,
            input.kind,
            input.target,
            input.version,
            input.contentHash,
            input.size,
            input.trainingDataHash,
            input.uris,
            input.metrics,
            msg.sender
        );
    }

    function _allowedUri(bytes memory u) private pure returns (bool) {
        if (u.length > _MAX_STRING) return false;
        return _hasPrefix(u, "https://") || _hasPrefix(u, "ipfs://") || _hasPrefix(u, "file://");
    }

    function _hasPrefix(bytes memory u, bytes memory p) private pure returns (bool) {
        if (u.length <= p.length) return false;
        for (uint256 i = 0; i < p.length; ++i) {
            if (u[i] != p[i]) return false;
        }
        return true;
    }

    /**
     * @notice Approves a Proposed release (release approver, not its proposer). The approvals are then
     * recounted, counting only accounts that hold the approver role now; at M (the threshold) the release
     * becomes Active and, if its version is the highest ever activated for (kind, target), the current
     * release ({activeRelease}).
     * @dev Costs one registry `hasRole` call per earlier approval of this release.
     * @param releaseId The release.
     */
    function approve(uint256 releaseId) external {
        _requireRole(_approverRole);
        Release storage r = _existing(releaseId);
        if (r.status != ReleaseStatus.Proposed) revert ReleaseNotInStatus(releaseId, r.status);
        if (r.proposer == msg.sender) revert SelfApproval(releaseId, msg.sender);
        uint16 n = r.approvals;
        uint16 current = 1; // the caller holds the role (checked above)
        for (uint256 i = 0; i < n; ++i) {
            address a = _approverAt[releaseId][i];
            if (a == msg.sender) revert AlreadyApproved(releaseId, msg.sender);
            if (registry.hasRole(_approverRole, a)) ++current;
        }
        _approverAt[releaseId][n] = msg.sender;
        r.approvals = n + 1;
        emit ReleaseApproved(releaseId, msg.sender, current);
        if (current >= _threshold) _activate(releaseId, r);
    }

    /**
     * @notice Re-checks a Proposed release and activates it if the approvals of accounts that hold the
     * approver role now reach the current threshold (anyone may call). Needed when the threshold was
     * lowered, or an approver re-granted the role, after the last approval.
     * @param releaseId The release.
     */
    function activate(uint256 releaseId) external {
        Release storage r = _existing(releaseId);
        if (r.status != ReleaseStatus.Proposed) revert ReleaseNotInStatus(releaseId, r.status);
        uint16 current = currentApprovals(releaseId);
        if (current < _threshold) revert BelowThreshold(releaseId, current, _threshold);
        _activate(releaseId, r);
    }

    function _activate(uint256 releaseId, Release storage r) private {
        r.status = ReleaseStatus.Active;
        uint256 highest = _highestActivated[r.kind][r.target];
        if (highest == 0 || _releases[highest].version < r.version) _highestActivated[r.kind][r.target] = releaseId;
        emit ReleaseActivated(releaseId, r.kind, r.target, r.version);
    }

    /**
     * @notice Revokes a Proposed or Active release (release manager or registry default admin). Final.
     * If it was the current release of its (kind, target) there is no current release until one with a
     * higher version activates (older Active releases do not become current again): gateways keep what
     * they run rather than roll back.
     * @param releaseId The release.
     * @param reason Short human reason (≤ 512 bytes).
     */
    function revoke(uint256 releaseId, string calldata reason) external {
        if (registry.defaultAdmin() != msg.sender) _requireRole(_managerRole);
        Release storage r = _existing(releaseId);
        if (r.status == ReleaseStatus.Revoked) revert ReleaseNotInStatus(releaseId, r.status);
        if (bytes(reason).length > _MAX_STRING) revert TooLong(bytes(reason).length, _MAX_STRING);
        r.status = ReleaseStatus.Revoked;
        emit ReleaseRevoked(releaseId, msg.sender, reason);
    }

    function _existing(uint256 releaseId) private view returns (Release storage r) {
        r = _releases[releaseId];
        if (r.status == ReleaseStatus.None) revert ReleaseUnknown(releaseId);
    }

    // ------------------------------------------------------------------ install reports

    /**
     * @notice EIP-712 digest a gateway signs to report that it runs `releaseId`.
     * @param gatewayId The gateway.
     * @param releaseId The installed release.
     * @param nonce {installNonce}(gatewayId) + 1.
     * @return The digest (domain "VigilReleases" v1, this chain and contract).
     */
    function installReportDigest(bytes32 gatewayId, uint256 releaseId, uint64 nonce) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(INSTALL_REPORT_TYPEHASH, gatewayId, releaseId, _releases[releaseId].contentHash, nonce)
            )
        );
    }

    /**
     * @notice Records that `gatewayId` runs Active release `releaseId`, signed by the gateway's current
     * registered key (any account may submit). Nonces are consecutive per gateway.
     * @param gatewayId The gateway.
     * @param releaseId The release it installed.
     * @param nonce {installNonce}(gatewayId) + 1.
     * @param signature Gateway signature over {installReportDigest}.
     */
    function reportInstalled(bytes32 gatewayId, uint256 releaseId, uint64 nonce, bytes calldata signature) external {
        Release storage r = _existing(releaseId);
        if (r.status != ReleaseStatus.Active) revert ReleaseNotInStatus(releaseId, r.status);
        uint64 expected = _installNonce[gatewayId] + 1;
        if (nonce != expected) revert UnexpectedNonce(gatewayId, expected, nonce);
        if (!registry.isValidGatewaySignature(gatewayId, installReportDigest(gatewayId, releaseId, nonce), signature))
        {
            revert InvalidReportSignature(gatewayId);
        }
        _installNonce[gatewayId] = expected;
        _installed[gatewayId][r.kind] = releaseId;
        emit InstallReported(gatewayId, releaseId, r.kind, r.version, expected);
    }

    // ------------------------------------------------------------------ views

    /**
     * @notice A release record.
     * @param releaseId The release.
     * @return The record (status None if unknown).
     */
    function getRelease(uint256 releaseId) external view returns (Release memory) {
        return _releases[releaseId];
    }

    /**
     * @notice The current release for (kind, target): the highest-version release ever activated there,
     * if it is still Active (not revoked); otherwise 0.
     * @param kind Model or Firmware.
     * @param target Target id.
     * @return releaseId The release id.
     */
    function activeRelease(ReleaseKind kind, bytes32 target) external view returns (uint256) {
        uint256 id = _highestActivated[kind][target];
        return _releases[id].status == ReleaseStatus.Active ? id : 0;
    }

    /**
     * @notice The highest version ever proposed for (kind, target).
     * @param kind Model or Firmware.
     * @param target Target id.
     * @return The version (0 = none).
     */
    function latestVersion(ReleaseKind kind, bytes32 target) external view returns (uint64) {
        return _latestVersion[kind][target];
    }

    /**
     * @notice The release a gateway last reported for `kind` (0 = none).
     * @param gatewayId The gateway.
     * @param kind Model or Firmware.
     * @return The release id.
     */
    function installedRelease(bytes32 gatewayId, ReleaseKind kind) external view returns (uint256) {
        return _installed[gatewayId][kind];
    }

    /**
     * @notice The last install-report nonce of a gateway.
     * @param gatewayId The gateway.
     * @return The nonce (the next report uses nonce + 1).
     */
    function installNonce(bytes32 gatewayId) external view returns (uint64) {
        return _installNonce[gatewayId];
    }

    /**
     * @notice Whether `approver` recorded an approval of `releaseId` (whether or not it still counts).
     * @param releaseId The release.
     * @param approver The approver.
     * @return True if approved.
     */
    function hasApproved(uint256 releaseId, address approver) external view returns (bool) {
        uint256 n = _releases[releaseId].approvals;
        for (uint256 i = 0; i < n; ++i) {
            if (_approverAt[releaseId][i] == approver) return true;
        }
        return false;
    }

    /**
     * @notice Every account that recorded an approval of `releaseId`, in order (including accounts that
     * have since lost the approver role).
     * @param releaseId The release.
     * @return list The approvers.
     */
    function approversOf(uint256 releaseId) external view returns (address[] memory list) {
        uint256 n = _releases[releaseId].approvals;
        list = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            list[i] = _approverAt[releaseId][i];
        }
    }

    /**
     * @notice The approvals of `releaseId` that count now: those of accounts holding the approver role.
     * @param releaseId The release.
     * @return count The number of counting approvals.
     */
    function currentApprovals(uint256 releaseId) public view returns (uint16 count) {
        uint256 n = _releases[releaseId].approvals;
        for (uint256 i = 0; i < n; ++i) {
            if (registry.hasRole(_approverRole, _approverAt[releaseId][i])) ++count;
        }
    }

    /**
     * @notice Current approval threshold M.
     * @return M.
     */
    function approvalThreshold() external view returns (uint16) {
        return _threshold;
    }

    /**
     * @notice Current size cap.
     * @return Bytes.
     */
    function maxReleaseSize() external view returns (uint64) {
        return _maxSize;
    }

    /**
     * @notice Number of releases ever proposed (ids are 1..count).
     * @return The count.
     */
    function releaseCount() external view returns (uint256) {
        return _count;
    }
}
