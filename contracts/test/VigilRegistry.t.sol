// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {VigilRegistry} from "../src/VigilRegistry.sol";
import {VigilReleases} from "../src/VigilReleases.sol";
import {BatchHeader, CompactSignature, KeyType, DeviceStatus, ReleaseKind, ReleaseStatus} from "../src/VigilTypes.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";

/// @dev Fuzz properties (>= 10,000 runs each with FOUNDRY_PROFILE=ci) and exact-error negative tests.
contract VigilRegistryFuzzTest is Base {
    function _anchorN(bytes32 id, KeyType t, uint256 pk, uint256 n, uint256 seed) internal returns (bytes32 head) {
        for (uint64 i = 1; i <= n; ++i) {
            BatchHeader memory h = _header(id, i, head, keccak256(abi.encode(seed, i)));
            reg.anchor(h, _sign(t, pk, _digest(reg, h)));
            head = _chain(head, h);
        }
    }

    /// Sequences only increase by one and the stored head is the documented hash chain.
    function testFuzz_AnchorExtendsHeadChain(uint256 seed, uint8 n, address submitter) public {
        n = uint8(bound(n, 1, 12));
        bytes32 head;
        for (uint64 i = 1; i <= n; ++i) {
            BatchHeader memory h = _header(GW, i, head, keccak256(abi.encode(seed, i)));
            assertEq(reg.hashBatchHeader(h), _structHash(h), "struct hash");
            vm.prank(submitter); // any account may submit
            bytes32 newHead = reg.anchor(h, _signK(GW_PK, _digest(reg, h)));
            head = _chain(head, h);
            assertEq(newHead, head, "returned head");
            (uint64 seq, bytes32 stored) = reg.headOf(GW);
            assertEq(seq, i, "seq");
            assertEq(stored, head, "stored head");
        }
    }

    /// Any sequence other than the next one is rejected with the exact error.
    function testFuzz_RejectsWrongSequence(uint64 seq, uint256 seed) public {
        _anchorN(GW, KeyType.Secp256k1, GW_PK, 2, seed);
        (, bytes32 head) = reg.headOf(GW);
        vm.assume(seq != 3);
        BatchHeader memory h = _header(GW, seq, head, keccak256(abi.encode(seed)));
        CompactSignature memory sig = _signK(GW_PK, _digest(reg, h));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.UnexpectedSequence.selector, GW, uint64(3), seq));
        reg.anchor(h, sig);
    }

    /// A header signed for another chain id is rejected (EIP-712 domain).
    function testFuzz_RejectsOtherChainSignature(uint64 otherChain, bytes32 root) public {
        vm.assume(otherChain != block.chainid && otherChain != 0 && root != 0);
        BatchHeader memory h = _header(GW, 1, 0, root);
        uint256 here = block.chainid;
        vm.chainId(otherChain);
        CompactSignature memory sig = _signK(GW_PK, _digest(reg, h));
        vm.chainId(here);
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.InvalidSignature.selector, GW));
        reg.anchor(h, sig);
    }

    /// A header signed for another registry (same gateway, same key) is rejected.
    function testFuzz_RejectsOtherContractSignature(bytes32 root) public {
        vm.assume(root != 0);
        vm.prank(admin);
        VigilRegistry other = new VigilRegistry(1 days, admin);
        bytes32 opRole = other.operatorRole(SITE);
        vm.prank(admin);
        other.grantRole(opRole, op);
        _register(other, GW, KeyType.Secp256k1, GW_PK);
        BatchHeader memory h = _header(GW, 1, 0, root);
        CompactSignature memory sigForOther = _signK(GW_PK, _digest(other, h));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.InvalidSignature.selector, GW));
        reg.anchor(h, sigForOther);
        other.anchor(h, sigForOther); // valid where it was meant
    }

    /// A signature over sha256(digest) — what noble's default `prehash: true` produces — is rejected.
    function testFuzz_RejectsPrehashedSignature(bytes32 root) public {
        vm.assume(root != 0);
        BatchHeader memory h = _header(GW, 1, 0, root);
        CompactSignature memory sig = _signK(GW_PK, sha256(abi.encodePacked(_digest(reg, h))));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.InvalidSignature.selector, GW));
        reg.anchor(h, sig);
    }

    /// High-s signatures are rejected: P-256 on anchor, secp256k1 on the bytes path.
    function testFuzz_RejectsHighS(bytes32 root) public {
        vm.assume(root != 0);
        BatchHeader memory h = _header(PGW, 1, 0, root);
        CompactSignature memory low = _signP(PGW_PK, _digest(reg, h));
        CompactSignature memory high = CompactSignature(low.r, bytes32(P256_N - uint256(low.vs)));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.MalleableSignature.selector, PGW));
        reg.anchor(h, high);
        reg.anchor(h, low);

        bytes memory newKey = abi.encodePacked(vm.addr(uint256(root) % 1000 + 1));
        bytes32 d = reg.keyRotationDigest(GW, KeyType.Secp256k1, newKey);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(GW_PK, d);
        bytes memory flipped = abi.encodePacked(r, bytes32(SECP_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        assertTrue(!reg.isValidGatewaySignature(GW, d, flipped), "flipped is invalid");
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.MalleableSignature.selector, GW));
        reg.rotateGatewayKeyBySignature(GW, KeyType.Secp256k1, newKey, flipped);
        reg.rotateGatewayKeyBySignature(GW, KeyType.Secp256k1, newKey, abi.encodePacked(r, s, v));
    }

    /// A revoked gateway never anchors again, whatever it signs.
    function testFuzz_RevokedNeverAnchors(uint256 seed, uint8 before) public {
        before = uint8(bound(before, 0, 4));
        bytes32 head = _anchorN(GW, KeyType.Secp256k1, GW_PK, before, seed);
        vm.prank(op);
        reg.revokeGateway(GW);
        BatchHeader memory h = _header(GW, uint64(before) + 1, head, keccak256(abi.encode(seed, "x")));
        CompactSignature memory sig = _signK(GW_PK, _digest(reg, h));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.GatewayNotActive.selector, GW, DeviceStatus.Revoked));
        reg.anchor(h, sig);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.InvalidStatusTransition.selector, DeviceStatus.Revoked, DeviceStatus.Active));
        reg.resumeGateway(GW);
    }

    /// Only the site's operator changes device state.
    function testFuzz_OnlyOperatorChangesDevices(address caller, bytes32 id) public {
        vm.assume(caller != op && id != 0);
        vm.startPrank(caller);
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.NotSiteOperator.selector, caller, SITE));
        reg.registerGateway(id, SITE, KeyType.Secp256k1, abi.encodePacked(address(1)), "");
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.NotSiteOperator.selector, caller, SITE));
        reg.suspendGateway(GW);
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.NotSiteOperator.selector, caller, SITE));
        reg.revokeGateway(GW);
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.NotSiteOperator.selector, caller, SITE));
        reg.rotateGatewayKey(GW, KeyType.Secp256k1, abi.encodePacked(address(1)));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.NotSiteOperator.selector, caller, SITE));
        reg.grantGatewayAccess(GW, caller, uint64(block.timestamp + 1));
        vm.stopPrank();
    }

    /// A leaf of an anchored 4-leaf tree is included; other leaves, or a wrong chain, are not.
    function testFuzz_LeafInclusion(bytes32 a, bytes32 b, bytes32 c, bytes32 d, bytes32 notLeaf) public {
        vm.assume(notLeaf != a && notLeaf != b && notLeaf != c && notLeaf != d);
        bytes32 ab = Hashes.commutativeKeccak256(a, b);
        bytes32 cd = Hashes.commutativeKeccak256(c, d);
        bytes32 root = Hashes.commutativeKeccak256(ab, cd);
        vm.assume(root != 0);
        BatchHeader memory h1 = _header(GW, 1, 0, root);
        reg.anchor(h1, _signK(GW_PK, _digest(reg, h1)));
        BatchHeader memory h2 = _header(GW, 2, _chain(0, h1), keccak256(abi.encode(root)));
        reg.anchor(h2, _signK(GW_PK, _digest(reg, h2)));
        bytes32[] memory later = new bytes32[](1);
        later[0] = _structHash(h2);
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = d;
        proof[1] = ab;
        assertTrue(reg.isLeafIncluded(h1, later, c, proof), "c included");
        assertTrue(!reg.isLeafIncluded(h1, later, notLeaf, proof), "not a leaf");
        assertTrue(!reg.isLeafIncluded(h1, new bytes32[](0), c, proof), "missing later header");
        later[0] = keccak256(abi.encode(later[0]));
        assertTrue(!reg.isLeafIncluded(h1, later, c, proof), "wrong later header");
    }

    /// Release versions never go backwards per (kind, target), and never jump by more than MAX_VERSION_STEP.
    function testFuzz_ReleaseVersionsNeverGoBackwards(uint64 first, uint64 second, bytes32 target) public {
        uint64 maxStep = rel.MAX_VERSION_STEP();
        first = uint64(bound(first, 1, maxStep));
        VigilReleases.ReleaseInput memory input = _release(first, target);
        vm.startPrank(manager);
        rel.propose(input);
        input.version = second;
        bool ok = second > first && second - first <= maxStep;
        if (second <= first) {
            vm.expectRevert(
                abi.encodeWithSelector(VigilReleases.VersionNotIncreasing.selector, ReleaseKind.Model, target, first, second)
            );
        } else if (!ok) {
            vm.expectRevert(
                abi.encodeWithSelector(VigilReleases.VersionStepTooLarge.selector, ReleaseKind.Model, target, first, second)
            );
        }
        rel.propose(input);
        vm.stopPrank();
        assertEq(rel.latestVersion(ReleaseKind.Model, target), ok ? second : first, "latest version");
    }

    /// Approvals below the threshold never activate a release.
    function testFuzz_ApprovalsBelowThresholdNeverActivate(uint8 threshold, uint8 approvals) public {
        threshold = uint8(bound(threshold, 1, 3));
        approvals = uint8(bound(approvals, 0, 3));
        vm.prank(admin);
        rel.setApprovalThreshold(threshold);
        VigilReleases.ReleaseInput memory input = _release(1, keccak256("hw")); // sha256 is a call: before prank
        vm.prank(manager);
        uint256 id = rel.propose(input);
        address[3] memory who = [approver1, approver2, approver3];
        for (uint256 i = 0; i < approvals; ++i) {
            if (i >= threshold) {
                vm.expectRevert(abi.encodeWithSelector(VigilReleases.ReleaseNotInStatus.selector, id, ReleaseStatus.Active));
            }
            vm.prank(who[i]);
            rel.approve(id);
        }
        bool active = rel.getRelease(id).status == ReleaseStatus.Active;
        assertTrue(active == (approvals >= threshold), "active iff approvals >= threshold");
        assertEq(rel.activeRelease(ReleaseKind.Model, keccak256("hw")), active ? id : 0, "current release");
    }

    // ---------------------------------------------------------------- exact-error negative tests

    function test_RejectsZeroRootEmptyBatchTimeRangeAndForkedHead() public {
        BatchHeader memory h = _header(GW, 1, 0, 0);
        CompactSignature memory sig = _signK(GW_PK, _digest(reg, h));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.ZeroRoot.selector, GW));
        reg.anchor(h, sig);
        h.root = keccak256("r");
        h.leafCount = 0;
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.EmptyBatch.selector, GW));
        reg.anchor(h, sig);
        h.leafCount = 1;
        (h.firstTimestamp, h.lastTimestamp) = (h.lastTimestamp, h.firstTimestamp);
        vm.expectRevert(
            abi.encodeWithSelector(VigilRegistry.InvalidTimeRange.selector, GW, h.firstTimestamp, h.lastTimestamp)
        );
        reg.anchor(h, sig);
        h = _header(GW, 1, keccak256("fork"), keccak256("r"));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.UnexpectedPrevHead.selector, GW, bytes32(0), keccak256("fork")));
        reg.anchor(h, sig);
    }

    function test_RejectsSuspendedAndUnknownGateways() public {
        vm.prank(op);
        reg.suspendGateway(GW);
        BatchHeader memory h = _header(GW, 1, 0, keccak256("r"));
        CompactSignature memory sig = _signK(GW_PK, _digest(reg, h));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.GatewayNotActive.selector, GW, DeviceStatus.Suspended));
        reg.anchor(h, sig);
        vm.prank(op);
        reg.resumeGateway(GW);
        reg.anchor(h, sig);
        h.gatewayId = keccak256("unknown");
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.GatewayNotActive.selector, h.gatewayId, DeviceStatus.None));
        reg.anchor(h, sig);
    }

    function test_P256AnchorAndRotationByOperator() public {
        BatchHeader memory h = _header(PGW, 1, 0, keccak256("r"));
        reg.anchor(h, _signP(PGW_PK, _digest(reg, h)));
        vm.prank(op);
        reg.rotateGatewayKey(PGW, KeyType.Secp256k1, abi.encodePacked(vm.addr(0x1234)));
        BatchHeader memory h2 = _header(PGW, 2, _chain(0, h), keccak256("r2"));
        CompactSignature memory oldSig = _signP(PGW_PK, _digest(reg, h2));
        vm.expectRevert(abi.encodeWithSelector(VigilRegistry.InvalidSignature.selector, PGW));
        reg.anchor(h2, CompactSignature(oldSig.r, bytes32(uint256(oldSig.vs) & ((1 << 255) - 1))));
        reg.anchor(h2, _signK(0x1234, _digest(reg, h2)));
    }

    function test_AdminHandoverIsTwoStep() public {
        vm.prank(admin);
        reg.beginDefaultAdminTransfer(op);
        assertTrue(reg.defaultAdmin() == admin, "still admin before accept");
        vm.warp(block.timestamp + 1 days + 1);
        vm.prank(op);
        reg.acceptDefaultAdminTransfer();
        assertTrue(reg.defaultAdmin() == op, "handed over");
    }

    /// An enum argument past its last member (status 4+, key type 3+) reverts in ABI decoding with
    /// no error data (Solidity >= 0.8), before any state changes: here for the sensor calls.
    function testFuzz_RejectsOutOfRangeEnumArguments(uint8 status, uint8 keyType) public {
        status = uint8(bound(status, 4, 255));
        keyType = uint8(bound(keyType, 3, 255));
        vm.startPrank(op);
        reg.registerSensor(GW, 7, KeyType.None, "");
        (bool ok, bytes memory ret) =
            address(reg).call(abi.encodeWithSelector(reg.setSensorStatus.selector, GW, uint32(7), uint256(status)));
        assertTrue(!ok, "status out of range");
        assertEq(ret.length, 0, "no error data");
        (ok, ret) = address(reg).call(
            abi.encodeWithSelector(reg.registerSensor.selector, GW, uint32(8), uint256(keyType), bytes(""))
        );
        assertTrue(!ok, "key type out of range");
        assertEq(ret.length, 0, "no error data");
        vm.stopPrank();
        (DeviceStatus st,,) = reg.getSensor(GW, 7);
        assertTrue(st == DeviceStatus.Active, "sensor unchanged");
        (st,,) = reg.getSensor(GW, 8);
        assertTrue(st == DeviceStatus.None, "sensor 8 not registered");
    }
}
