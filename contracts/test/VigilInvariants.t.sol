// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {VigilRegistry} from "../src/VigilRegistry.sol";
import {VigilReleases} from "../src/VigilReleases.sol";
import {BatchHeader, CompactSignature, KeyType, DeviceStatus} from "../src/VigilTypes.sol";

/// @dev Drives the registry with valid, invalid, replayed and unauthorised actions and records ghost
/// state; the invariants below compare it with the contracts. Releases: VigilReleasesInvariants.t.sol.
contract Handler is Base {
    bytes32[2] internal ids;
    KeyType[2] internal types;
    uint256[2] internal pks;

    // ghost state
    uint64[2] public ghostSeq;
    bytes32[2] public ghostHead;
    bool[2] public revoked;
    uint64[2] public seqAtRevoke;
    bool public replaySucceeded;
    bool public unauthorisedSucceeded;
    bool public rootAnchoredTwice;
    mapping(bytes32 => bool) internal anchoredRoot;
    BatchHeader[] internal anchored;
    CompactSignature[] internal anchoredSig;

    constructor() {
        _deploy();
        ids = [GW, PGW];
        types = [KeyType.Secp256k1, KeyType.P256];
        pks = [GW_PK, PGW_PK];
    }

    /// @dev The fuzzer calls every public function of the handler: make the fixture's setUp a no-op here.
    function setUp() public override {}

    function registry() external view returns (VigilRegistry) {
        return reg;
    }

    function releasesContract() external view returns (VigilReleases) {
        return rel;
    }

    function anchor(uint256 which, uint256 rootSeed, address submitter) external {
        uint256 i = which % 2;
        bytes32 root = keccak256(abi.encode(rootSeed, ghostSeq[i], i));
        BatchHeader memory h = _header(ids[i], ghostSeq[i] + 1, ghostHead[i], root);
        CompactSignature memory sig = _sign(types[i], pks[i], _digest(reg, h));
        vm.prank(submitter);
        try reg.anchor(h, sig) returns (bytes32 newHead) {
            require(!revoked[i], "revoked gateway anchored");
            if (anchoredRoot[keccak256(abi.encode(i, root))]) rootAnchoredTwice = true;
            anchoredRoot[keccak256(abi.encode(i, root))] = true;
            ghostSeq[i] += 1;
            ghostHead[i] = newHead;
            anchored.push(h);
            anchoredSig.push(sig);
        } catch {}
    }

    function anchorWrongSeq(uint256 which, uint64 seq) external {
        uint256 i = which % 2;
        BatchHeader memory h = _header(ids[i], seq, ghostHead[i], keccak256(abi.encode(seq)));
        CompactSignature memory sig = _sign(types[i], pks[i], _digest(reg, h));
        try reg.anchor(h, sig) {
            if (seq != ghostSeq[i] + 1) replaySucceeded = true;
            else {
                ghostSeq[i] += 1;
                ghostHead[i] = _chain(h.prevHead, h);
                anchored.push(h);
                anchoredSig.push(sig);
            }
        } catch {}
    }

    function replay(uint256 k) external {
        if (anchored.length == 0) return;
        k = k % anchored.length;
        try reg.anchor(anchored[k], anchoredSig[k]) {
            replaySucceeded = true;
        } catch {}
    }

    function suspendOrResume(uint256 which) external {
        uint256 i = which % 2;
        DeviceStatus s = reg.getGateway(ids[i]).status;
        vm.prank(op);
        if (s == DeviceStatus.Active) reg.suspendGateway(ids[i]);
        else if (s == DeviceStatus.Suspended) reg.resumeGateway(ids[i]);
    }

    function revoke(uint256 which) external {
        uint256 i = which % 2;
        if (revoked[i]) return;
        vm.prank(op);
        reg.revokeGateway(ids[i]);
        revoked[i] = true;
        seqAtRevoke[i] = ghostSeq[i];
    }

    function stranger(uint256 action, address caller) external {
        if (caller == op || caller == admin || caller == manager) return;
        if (caller == approver1 || caller == approver2 || caller == approver3) return;
        vm.startPrank(caller);
        uint256 a = action % 6;
        bool ok;
        if (a == 0) ok = _try(address(reg), abi.encodeCall(reg.suspendGateway, (GW)));
        if (a == 1) ok = _try(address(reg), abi.encodeCall(reg.revokeGateway, (PGW)));
        if (a == 2) ok = _try(address(reg), abi.encodeCall(reg.rotateGatewayKey, (GW, KeyType.Secp256k1, abi.encodePacked(caller))));
        if (a == 3) ok = _try(address(reg), abi.encodeCall(reg.grantRole, (reg.operatorRole(SITE), caller)));
        if (a == 4) ok = _try(address(rel), abi.encodeCall(rel.setApprovalThreshold, (1)));
        if (a == 5) ok = _try(address(rel), abi.encodeCall(rel.approve, (1)));
        vm.stopPrank();
        if (ok) unauthorisedSucceeded = true;
    }

    function _try(address target, bytes memory data) internal returns (bool ok) {
        (ok,) = target.call(data);
    }
}

/// @dev Invariants over the handler's random sequences (FOUNDRY_PROFILE=ci: 256 runs x depth 50).
contract VigilInvariantTest {
    Handler internal handler;

    function setUp() public {
        handler = new Handler();
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    /// Sequences only increase, by exactly one per accepted anchor, and heads follow the ghost chain.
    function invariant_sequencesMatchAcceptedAnchors() public view {
        VigilRegistry reg = handler.registry();
        bytes32[2] memory ids = [keccak256("gw:secp"), keccak256("gw:p256")];
        for (uint256 i = 0; i < 2; ++i) {
            (uint64 seq, bytes32 head) = reg.headOf(ids[i]);
            require(seq == handler.ghostSeq(i), "seq != accepted anchors");
            require(head == handler.ghostHead(i), "head != ghost chain");
        }
    }

    /// A revoked key never anchors again.
    function invariant_revokedNeverAnchors() public view {
        VigilRegistry reg = handler.registry();
        bytes32[2] memory ids = [keccak256("gw:secp"), keccak256("gw:p256")];
        for (uint256 i = 0; i < 2; ++i) {
            if (!handler.revoked(i)) continue;
            (uint64 seq,) = reg.headOf(ids[i]);
            require(seq == handler.seqAtRevoke(i), "revoked gateway advanced");
            require(reg.getGateway(ids[i]).status == DeviceStatus.Revoked, "revocation undone");
        }
    }

    /// No replayed or out-of-order header is ever accepted; no root is anchored twice for a gateway.
    function invariant_noReplay() public view {
        require(!handler.replaySucceeded(), "replay or wrong seq accepted");
        require(!handler.rootAnchoredTwice(), "root anchored twice");
    }

    /// Only role holders change state.
    function invariant_onlyRoleHoldersChangeState() public view {
        require(!handler.unauthorisedSucceeded(), "unauthorised call succeeded");
    }
}
