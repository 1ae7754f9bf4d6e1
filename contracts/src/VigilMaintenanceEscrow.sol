// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {BatchHeader, DeviceStatus, GatewayInfo} from "./VigilTypes.sol";
import {AlertLeaf, IVigilRegistryReader, VigilAlertLeaf} from "./VigilAlertLeaf.sol";

/**
 * @title VigilMaintenanceEscrow
 * @notice Example consumer of Vigil as a signed data oracle: a maintenance service agreement (or an
 * insurance payout) that pays a fixed amount to a payee each time anyone presents an attested ALERT of
 * the agreed machine — the leaf preimage, its Merkle proof, the anchored batch header and the struct
 * hashes of the batches anchored after it (all from a `vigil-receipt/1` alert receipt) — raised with at
 * least the agreed severity by a gateway that is registered at the agreed site and Active.
 *
 * A client opens an agreement and funds it in the chain's native currency; anyone may top it up or
 * submit claims (the payee is fixed, so a relayer cannot redirect the money); each alert leaf pays at
 * most once per agreement; after `expiresAt` the client withdraws what is left. Not upgradeable, no
 * admin: the registry address is fixed at deployment.
 *
 * Trust: the payout rests on the gateway's signature over the batch (checked by the registry when it
 * was anchored) and on the gateway being Active now — revoking a compromised gateway stops all of its
 * unclaimed alerts from paying. It does not judge the alert itself: the model (optionally pinned by
 * `modelHash`) and the gateway's operator are trusted to raise alerts honestly.
 */
contract VigilMaintenanceEscrow {
    /// @notice What an agreement pays for, chosen by its client at {open}.
    struct Terms {
        /// @dev Receives `payout` per accepted alert.
        address payable payee;
        /// @dev Site id of the registry (`GatewayInfo.site`) whose gateways may attest the alert.
        bytes32 site;
        /// @dev The machine: the alert's device id (u32, as in frames and leaves).
        uint32 deviceId;
        /// @dev Lowest accepted severity code: 1 info, 2 warning, 3 critical.
        uint8 minSeverity;
        /// @dev keccak256 of the accepted rule id (e.g. "failure-critical"), or zero for any rule.
        bytes32 ruleHash;
        /// @dev sha256 of the accepted model (the leaf's modelHash), or zero for any model.
        bytes32 modelHash;
        /// @dev Alerts timestamped (device clock, µs) before this do not pay.
        uint64 notBeforeUs;
        /// @dev Unix seconds: claims are accepted before it; the client may withdraw from it on.
        uint64 expiresAt;
        /// @dev Paid per accepted alert, in wei.
        uint128 payout;
    }

    /// @notice A stored agreement.
    struct Agreement {
        Terms terms;
        address client;
        /// @dev Wei held for this agreement.
        uint128 balance;
        /// @dev Alerts paid so far.
        uint32 claims;
    }

    /// @notice Everything needed to prove one alert, as found in its `vigil-receipt/1` receipt.
    struct AlertClaim {
        /// @dev `alert.preimage`.
        bytes preimage;
        /// @dev `batch.header`, the anchored batch holding the leaf.
        BatchHeader header;
        /// @dev Struct hashes of the batches anchored after it, up to the latest head or a checkpoint.
        bytes32[] laterHeaderHashes;
        /// @dev `proof`, the sibling path of the leaf in `header.root`.
        bytes32[] proof;
    }

    /// @notice The Vigil registry whose anchors and gateways this escrow trusts.
    IVigilRegistryReader public immutable registry;

    uint256 private _count;
    mapping(uint256 agreementId => Agreement) private _agreements;
    mapping(uint256 agreementId => mapping(bytes32 leaf => bool)) private _claimed;

    /// @notice Agreement `agreementId` was opened by `client` with `terms` and `funded` wei.
    event AgreementOpened(uint256 indexed agreementId, address indexed client, Terms terms, uint256 funded);
    /// @notice `amount` wei were added to `agreementId` by `from`.
    event AgreementFunded(uint256 indexed agreementId, address indexed from, uint256 amount);
    /// @notice Alert `leaf` of `gatewayId` (batch `seq`) paid `amount` wei to `payee`.
    event AlertPaid(
        uint256 indexed agreementId,
        bytes32 indexed leaf,
        bytes32 indexed gatewayId,
        uint64 seq,
        uint32 deviceId,
        uint8 severity,
        uint64 timestampUs,
        address payee,
        uint256 amount
    );
    /// @notice After expiry the client withdrew the remaining `amount` wei.
    event AgreementWithdrawn(uint256 indexed agreementId, address indexed client, uint256 amount);

    /// @notice {open}: the terms are unusable; `reason` says which rule failed.
    error InvalidTerms(string reason);
    /// @notice No agreement has this id.
    error AgreementUnknown(uint256 agreementId);
    /// @notice The agreement expired at `expiresAt`: no more claims.
    error AgreementExpired(uint256 agreementId, uint64 expiresAt);
    /// @notice {withdraw} before `expiresAt`.
    error AgreementNotExpired(uint256 agreementId, uint64 expiresAt);
    /// @notice {withdraw} by an account other than the agreement's client.
    error NotClient(uint256 agreementId, address account);
    /// @notice The agreement holds `balance` wei, less than one `payout`.
    error AgreementUnderfunded(uint256 agreementId, uint256 balance, uint256 payout);
    /// @notice This alert leaf already paid under this agreement.
    error AlreadyClaimed(uint256 agreementId, bytes32 leaf);
    /// @notice The alert is about device `got`, not the agreed `expected`.
    error WrongDevice(uint256 agreementId, uint32 expected, uint32 got);
    /// @notice The leaf attests that an alert was cleared, not raised.
    error AlertCleared(uint256 agreementId, bytes32 leaf);
    /// @notice The alert's severity `got` is below the agreed `min`.
    error SeverityTooLow(uint256 agreementId, uint8 min, uint8 got);
    /// @notice The alert's rule id hashes to `got`, not the agreed `expected`.
    error WrongRule(uint256 agreementId, bytes32 expected, bytes32 got);
    /// @notice The alert was decided by model `got`, not the agreed `expected`.
    error WrongModel(uint256 agreementId, bytes32 expected, bytes32 got);
    /// @notice The alert is timestamped `timestampUs`, before the agreed `notBeforeUs`.
    error AlertTooEarly(uint256 agreementId, uint64 notBeforeUs, uint64 timestampUs);
    /// @notice The header's gateway is not Active now (`status`: 0 unregistered, 2 suspended, 3 revoked).
    error GatewayNotActive(bytes32 gatewayId, DeviceStatus status);
    /// @notice The header's gateway belongs to site `got`, not the agreed `expected`.
    error WrongSite(bytes32 gatewayId, bytes32 expected, bytes32 got);
    /// @notice The registry does not confirm that `leaf` is in an anchored batch of the header's gateway
    /// (wrong proof, header or later header hashes, or the batch was never anchored).
    error LeafNotIncluded(bytes32 gatewayId, bytes32 leaf);

    /**
     * @param registry_ The {VigilRegistry} to trust.
     */
    constructor(IVigilRegistryReader registry_) {
        registry = registry_;
    }

    /**
     * @notice Opens an agreement funded with `msg.value` (may be zero; see {fund}). The caller is its client.
     * @param terms Non-zero payee, site and payout; `expiresAt` in the future.
     * @return agreementId The new agreement's id (from 1).
     */
    function open(Terms calldata terms) external payable returns (uint256 agreementId) {
        if (terms.payee == address(0)) revert InvalidTerms("payee is the zero address");
        if (terms.site == 0) revert InvalidTerms("site is zero");
        if (terms.payout == 0) revert InvalidTerms("payout is zero");
        if (terms.expiresAt <= block.timestamp) revert InvalidTerms("expiresAt is not in the future");
        agreementId = ++_count;
        Agreement storage a = _agreements[agreementId];
        a.terms = terms;
        a.client = msg.sender;
        a.balance = _toUint128(msg.value);
        emit AgreementOpened(agreementId, msg.sender, terms, msg.value);
    }

    /**
     * @notice Adds `msg.value` wei to an agreement (anyone).
     * @param agreementId The agreement.
     */
    function fund(uint256 agreementId) external payable {
        Agreement storage a = _existing(agreementId);
        a.balance = _toUint128(a.balance + msg.value);
        emit AgreementFunded(agreementId, msg.sender, msg.value);
    }

    /**
     * @notice Checks a claim without paying: the same checks as {claim}, in the same order, with the same
     * errors. Order: agreement exists, not expired, balance ≥ payout; the preimage decodes as an ALERT
     * leaf ({VigilAlertLeaf}); not claimed yet; device; raised (not cleared); severity ≥ minimum; rule and
     * model if agreed; timestamp ≥ notBeforeUs; the header's gateway is Active and of the agreed site; the
     * registry's `isLeafIncluded(header, laterHeaderHashes, keccak256(preimage), proof)`.
     * @param agreementId The agreement.
     * @param c The alert and its proof.
     * @return alert The decoded alert.
     */
    function check(uint256 agreementId, AlertClaim calldata c) public view returns (AlertLeaf memory alert) {
        Agreement storage a = _existing(agreementId);
        Terms storage t = a.terms;
        if (block.timestamp >= t.expiresAt) revert AgreementExpired(agreementId, t.expiresAt);
        if (a.balance < t.payout) revert AgreementUnderfunded(agreementId, a.balance, t.payout);
        alert = VigilAlertLeaf.decode(c.preimage);
        if (_claimed[agreementId][alert.leaf]) revert AlreadyClaimed(agreementId, alert.leaf);
        if (alert.deviceId != t.deviceId) revert WrongDevice(agreementId, t.deviceId, alert.deviceId);
        if (alert.cleared) revert AlertCleared(agreementId, alert.leaf);
        if (alert.severity < t.minSeverity) revert SeverityTooLow(agreementId, t.minSeverity, alert.severity);
        if (t.ruleHash != 0 && alert.ruleHash != t.ruleHash) {
            revert WrongRule(agreementId, t.ruleHash, alert.ruleHash);
        }
        if (t.modelHash != 0 && alert.modelHash != t.modelHash) {
            revert WrongModel(agreementId, t.modelHash, alert.modelHash);
        }
        if (alert.timestampUs < t.notBeforeUs) revert AlertTooEarly(agreementId, t.notBeforeUs, alert.timestampUs);
        bytes32 gatewayId = c.header.gatewayId;
        GatewayInfo memory g = registry.getGateway(gatewayId);
        if (g.status != DeviceStatus.Active) revert GatewayNotActive(gatewayId, g.status);
        if (g.site != t.site) revert WrongSite(gatewayId, t.site, g.site);
        if (!registry.isLeafIncluded(c.header, c.laterHeaderHashes, alert.leaf, c.proof)) {
            revert LeafNotIncluded(gatewayId, alert.leaf);
        }
    }

    /**
     * @notice Pays the agreement's `payout` to its payee for an attested alert (anyone may submit). Each
     * leaf pays at most once per agreement. Reverts as {check} does.
     * @param agreementId The agreement.
     * @param c The alert and its proof.
     * @return leaf The paid alert leaf.
     */
    function claim(uint256 agreementId, AlertClaim calldata c) external returns (bytes32 leaf) {
        AlertLeaf memory alert = check(agreementId, c);
        Agreement storage a = _agreements[agreementId];
        uint128 payout = a.terms.payout;
        leaf = alert.leaf;
        // Effects before the transfer (checks-effects-interactions): a re-entering payee finds the leaf
        // claimed and the balance already reduced.
        _claimed[agreementId][leaf] = true;
        a.balance -= payout;
        a.claims += 1;
        address payable payee = a.terms.payee;
        emit AlertPaid(
            agreementId,
            leaf,
            c.header.gatewayId,
            c.header.seq,
            alert.deviceId,
            alert.severity,
            alert.timestampUs,
            payee,
            payout
        );
        Address.sendValue(payee, payout);
    }

    /**
     * @notice Sends the remaining balance to the client once the agreement has expired (client only).
     * @param agreementId The agreement.
     */
    function withdraw(uint256 agreementId) external {
        Agreement storage a = _existing(agreementId);
        if (msg.sender != a.client) revert NotClient(agreementId, msg.sender);
        if (block.timestamp < a.terms.expiresAt) revert AgreementNotExpired(agreementId, a.terms.expiresAt);
        uint256 amount = a.balance;
        a.balance = 0;
        emit AgreementWithdrawn(agreementId, msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /**
     * @notice An agreement (client zero if unknown).
     * @param agreementId The agreement.
     * @return The record.
     */
    function getAgreement(uint256 agreementId) external view returns (Agreement memory) {
        return _agreements[agreementId];
    }

    /**
     * @notice Whether `leaf` already paid under `agreementId`.
     * @param agreementId The agreement.
     * @param leaf The alert leaf hash.
     * @return True if paid.
     */
    function isClaimed(uint256 agreementId, bytes32 leaf) external view returns (bool) {
        return _claimed[agreementId][leaf];
    }

    /**
     * @notice Number of agreements ever opened (ids are 1..count).
     * @return The count.
     */
    function agreementCount() external view returns (uint256) {
        return _count;
    }

    function _existing(uint256 agreementId) private view returns (Agreement storage a) {
        a = _agreements[agreementId];
        if (a.client == address(0)) revert AgreementUnknown(agreementId);
    }

    function _toUint128(uint256 x) private pure returns (uint128) {
        if (x > type(uint128).max) revert InvalidTerms("balance above 2^128 - 1 wei");
        return uint128(x);
    }
}
