// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {BatchHeader, GatewayInfo} from "./VigilTypes.sol";

/// @dev The views of {VigilRegistry} a consumer of attested data needs (keeps consumers small).
interface IVigilRegistryReader {
    function isLeafIncluded(
        BatchHeader calldata header,
        bytes32[] calldata laterHeaderHashes,
        bytes32 leaf,
        bytes32[] calldata proof
    ) external view returns (bool);
    function getGateway(bytes32 gatewayId) external view returns (GatewayInfo memory info);
}

/// @dev An ALERT leaf (tag 0x03) decoded from its preimage by {VigilAlertLeaf-decode}.
struct AlertLeaf {
    /// keccak256 of the preimage: the Merkle leaf.
    bytes32 leaf;
    /// sha256 of the ONNX model that decided the alert.
    bytes32 modelHash;
    /// sha256 of the float32 input window.
    bytes32 inputWindowHash;
    uint32 deviceId;
    /// Device timestamp of the input window's last frame, µs since the Unix epoch (< 2^53).
    uint64 timestampUs;
    /// 1 info, 2 warning, 3 critical (gateway/src/alerts/rules.ts SEVERITY_CODE).
    uint8 severity;
    /// True for the transition that cleared an alert (rule `"{id}:clear"`), false when it was raised.
    bool cleared;
    /// keccak256 of the rule id without the `:clear` suffix, e.g. keccak256("failure-critical").
    bytes32 ruleHash;
    /// The score as IEEE-754 float32 bits (big-endian in the preimage).
    uint32 scoreBits;
}

/// @notice The preimage is not a canonical ALERT preimage (length, rule, padding or timestamp); `length`
/// is the preimage length.
error MalformedAlertLeaf(uint256 length);
/// @notice The preimage's first byte (the leaf kind) is `tag`, not 0x03 (ALERT).
error NotAnAlertLeaf(uint8 tag);

/**
 * @title VigilAlertLeaf
 * @notice Strict on-chain decoder of Vigil ALERT leaf preimages, the exact inverse of the gateway's
 * `alertLeafPreimage` (gateway/src/core/leaf.ts; receipts: gateway/src/attest/RECEIPTS.md):
 *
 * `0x03 ‖ modelHash 32 ‖ inputWindowHash 32 ‖ deviceId u32 ‖ timestampUs u64 ‖ severity u8 ‖ ruleLen u8
 *  ‖ rule (ruleLen bytes, 0x21–0x7e, 1 ≤ ruleLen ≤ 64) ‖ score f32 ‖ pad`, big-endian, where `pad` is one
 * 0x00 byte when the body before it has even length (every preimage has odd length, so it can never be
 * the 64-byte preimage of an inner Merkle node).
 *
 * It accepts exactly what the gateway's strict TypeScript decoder (`decodeModelLeaf`) accepts, so a
 * leaf that pays on chain also verifies off chain.
 */
library VigilAlertLeaf {
    /// @dev Leaf kind tag of ALERT leaves.
    uint8 internal constant TAG = 0x03;
    /// @dev Fixed bytes before the rule: tag 1 + modelHash 32 + window 32 + device 4 + time 8 + severity 1 + ruleLen 1.
    uint256 private constant _RULE_AT = 79;
    /// @dev ":clear", the suffix of the rule of a cleared alert.
    bytes6 private constant _CLEAR = ":clear";

    /**
     * @notice Decodes and checks an ALERT preimage; reverts with {NotAnAlertLeaf} or {MalformedAlertLeaf}.
     * @param p The preimage (calldata).
     * @return a The decoded fields and `leaf = keccak256(p)`.
     */
    function decode(bytes calldata p) internal pure returns (AlertLeaf memory a) {
        if (p.length == 0) revert MalformedAlertLeaf(0);
        if (uint8(p[0]) != TAG) revert NotAnAlertLeaf(uint8(p[0]));
        if (p.length < _RULE_AT + 1 + 4 + 1) revert MalformedAlertLeaf(p.length);
        uint256 ruleLen = uint8(p[78]);
        uint256 body = _RULE_AT + ruleLen + 4;
        uint256 expected = body % 2 == 1 ? body : body + 1;
        if (ruleLen == 0 || ruleLen > 64 || p.length != expected) revert MalformedAlertLeaf(p.length);
        if (expected != body && p[body] != 0) revert MalformedAlertLeaf(p.length);
        uint64 ts = uint64(bytes8(p[69:77]));
        if (ts >= 1 << 53) revert MalformedAlertLeaf(p.length); // the gateway's JSON-safe range
        for (uint256 i = _RULE_AT; i < _RULE_AT + ruleLen; ++i) {
            bytes1 c = p[i];
            if (c < 0x21 || c > 0x7e) revert MalformedAlertLeaf(p.length);
        }
        a.leaf = keccak256(p);
        a.modelHash = bytes32(p[1:33]);
        a.inputWindowHash = bytes32(p[33:65]);
        a.deviceId = uint32(bytes4(p[65:69]));
        a.timestampUs = ts;
        a.severity = uint8(p[77]);
        uint256 idLen = ruleLen;
        if (ruleLen > 6 && bytes6(p[_RULE_AT + ruleLen - 6:_RULE_AT + ruleLen]) == _CLEAR) {
            a.cleared = true;
            idLen = ruleLen - 6;
        }
        a.ruleHash = keccak256(p[_RULE_AT:_RULE_AT + idLen]);
        a.scoreBits = uint32(bytes4(p[_RULE_AT + ruleLen:body]));
    }
}
