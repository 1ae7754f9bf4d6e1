// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {VigilMaintenanceEscrow} from "../src/VigilMaintenanceEscrow.sol";
import {
    AlertLeaf,
    IVigilRegistryReader,
    MalformedAlertLeaf,
    NotAnAlertLeaf,
    VigilAlertLeaf
} from "../src/VigilAlertLeaf.sol";
import {BatchHeader, DeviceStatus, KeyType} from "../src/VigilTypes.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";

/// @dev Exposes the internal decoder with a calldata argument.
contract AlertLeafHarness {
    function decode(bytes calldata p) external pure returns (AlertLeaf memory) {
        return VigilAlertLeaf.decode(p);
    }
}

/// @dev A payee that re-enters claim() with the same alert when paid, and swallows the failure.
contract ReentrantPayee {
    VigilMaintenanceEscrow internal escrow;
    uint256 internal id;
    VigilMaintenanceEscrow.AlertClaim internal claim;
    bool public reentryFailed;

    function arm(VigilMaintenanceEscrow e, uint256 agreementId, VigilMaintenanceEscrow.AlertClaim calldata c) external {
        escrow = e;
        id = agreementId;
        claim = c;
    }

    receive() external payable {
        if (address(escrow) == address(0)) return;
        VigilMaintenanceEscrow e = escrow;
        escrow = VigilMaintenanceEscrow(address(0)); // one attempt
        try e.claim(id, claim) {} catch {
            reentryFailed = true;
        }
    }
}

/// @dev A payee that refuses payments.
contract RefusingPayee {
    receive() external payable {
        revert("no");
    }
}

/// @dev The example consumer: pays for attested ALERT leaves of one machine, from Active gateways of one
/// site, once per leaf. Leaves are built exactly as gateway/src/attest/leaf.ts alertLeafPreimage does.
contract VigilMaintenanceEscrowTest is Base {
    VigilMaintenanceEscrow internal escrow;
    AlertLeafHarness internal harness;
    address payable internal payee = payable(address(0xFEE));
    address internal client = address(0xC11E);
    bytes32 internal constant MODEL = keccak256("model:rotating-v1");
    bytes32 internal constant WINDOW = keccak256("window");
    uint32 internal constant DEVICE = 0x2a;
    uint64 internal constant TS = 1_767_225_600_000_000 + 30_000_000; // inside _header(…, 1, …)'s range
    uint128 internal constant PAYOUT = 1 ether;
    bytes32 internal constant SITE2 = keccak256("site:plant-2");
    bytes32 internal constant OTHER_GW = keccak256("gw:other-site");
    address internal op2 = address(0x0B0C);

    function setUp() public override {
        super.setUp();
        escrow = new VigilMaintenanceEscrow(IVigilRegistryReader(address(reg)));
        harness = new AlertLeafHarness();
        vm.deal(client, 100 ether);
        bytes32 role2 = reg.operatorRole(SITE2);
        vm.prank(admin);
        reg.grantRole(role2, op2);
        vm.prank(op2);
        reg.registerGateway(OTHER_GW, SITE2, KeyType.Secp256k1, abi.encodePacked(vm.addr(GW_PK)), "");
    }

    // ---------------------------------------------------------------- helpers

    /// @dev ALERT preimage: 0x03 ‖ modelHash ‖ inputWindowHash ‖ deviceId u32 ‖ timestampUs u64 ‖ severity u8
    /// ‖ ruleLen u8 ‖ rule ‖ score f32 ‖ pad (one 0x00 when the body has even length).
    function _alert(uint32 device, uint8 severity, string memory rule, uint64 ts) internal pure returns (bytes memory p) {
        p = abi.encodePacked(
            uint8(3), MODEL, WINDOW, device, ts, severity, uint8(bytes(rule).length), rule, uint32(0x3f666666) // 0.9f
        );
        if (p.length % 2 == 0) p = abi.encodePacked(p, uint8(0));
    }

    function _terms() internal view returns (VigilMaintenanceEscrow.Terms memory) {
        return VigilMaintenanceEscrow.Terms({
            payee: payee,
            site: SITE,
            deviceId: DEVICE,
            minSeverity: 3,
            ruleHash: 0,
            modelHash: 0,
            notBeforeUs: 0,
            expiresAt: uint64(block.timestamp + 30 days),
            payout: PAYOUT
        });
    }

    function _open(VigilMaintenanceEscrow.Terms memory t, uint256 funds) internal returns (uint256 id) {
        vm.prank(client);
        id = escrow.open{value: funds}(t);
    }

    /// @dev Anchors `preimage`'s leaf at index 0 of a 4-leaf batch of gateway `gw` (seq 1) and returns
    /// the claim (no later batches).
    function _anchored(bytes32 gw, bytes memory preimage)
        internal
        returns (VigilMaintenanceEscrow.AlertClaim memory c)
    {
        bytes32 leaf = keccak256(preimage);
        bytes32 l1 = keccak256("frame leaf 1");
        bytes32 l23 = Hashes.commutativeKeccak256(keccak256("frame leaf 2"), keccak256("frame leaf 3"));
        bytes32 root = Hashes.commutativeKeccak256(Hashes.commutativeKeccak256(leaf, l1), l23);
        (uint64 seq, bytes32 head) = reg.headOf(gw);
        BatchHeader memory h = _header(gw, seq + 1, head, root);
        h.leafCount = 4;
        h.modelHash = MODEL;
        reg.anchor(h, _signK(GW_PK, _digest(reg, h)));
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = l1;
        proof[1] = l23;
        c = VigilMaintenanceEscrow.AlertClaim({
            preimage: preimage, header: h, laterHeaderHashes: new bytes32[](0), proof: proof
        });
    }

    function _expectClaimRevert(uint256 id, VigilMaintenanceEscrow.AlertClaim memory c, bytes memory err) internal {
        vm.expectRevert(err);
        escrow.check(id, c);
        vm.expectRevert(err);
        escrow.claim(id, c);
    }

    // ---------------------------------------------------------------- behaviour

    function test_PaysOnceForAnAttestedAlert() public {
        uint256 id = _open(_terms(), 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        AlertLeaf memory a = escrow.check(id, c);
        assertEq(a.leaf, keccak256(c.preimage), "leaf");
        assertEq(a.deviceId, DEVICE, "device");
        assertEq(a.severity, 3, "severity");
        assertEq(a.ruleHash, keccak256("failure-critical"), "rule");
        assertTrue(!a.cleared, "raised");
        vm.prank(address(0x5EED)); // any account may submit; the payee is fixed
        bytes32 leaf = escrow.claim(id, c);
        assertEq(leaf, a.leaf, "claimed leaf");
        assertEq(payee.balance, PAYOUT, "payee paid");
        assertEq(address(escrow).balance, 2 ether, "escrow keeps the rest");
        VigilMaintenanceEscrow.Agreement memory ag = escrow.getAgreement(id);
        assertEq(ag.balance, 2 ether, "balance");
        assertEq(ag.claims, 1, "claims");
        assertTrue(escrow.isClaimed(id, leaf), "claimed");
        // Replay: the same leaf never pays twice.
        _expectClaimRevert(id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.AlreadyClaimed.selector, id, leaf));
        // Another agreement (e.g. an insurer) may pay for the same alert once too.
        uint256 id2 = _open(_terms(), 1 ether);
        escrow.claim(id2, c);
        assertEq(payee.balance, 2 * PAYOUT, "second agreement paid");
        _expectClaimRevert(
            id2, c, abi.encodeWithSelector(VigilMaintenanceEscrow.AgreementUnderfunded.selector, id2, 0, PAYOUT)
        );
    }

    function test_ProvesOlderBatchesThroughLaterHeadersOrACheckpoint() public {
        uint256 id = _open(_terms(), 3 ether);
        uint256 id2 = _open(_terms(), 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        BatchHeader memory h2 = _header(GW, 2, _chain(0, c.header), keccak256("batch 2"));
        reg.anchor(h2, _signK(GW_PK, _digest(reg, h2)));
        // Batch 1 is no longer the head: without the later header hash it is not proven.
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.LeafNotIncluded.selector, GW, keccak256(c.preimage))
        );
        c.laterHeaderHashes = new bytes32[](1);
        c.laterHeaderHashes[0] = _structHash(h2);
        escrow.claim(id, c);
        // Checkpoint at seq 2; the head moves on to seq 3, and the same proof still holds via the checkpoint.
        reg.checkpoint(GW);
        VigilMaintenanceEscrow.AlertClaim memory c3 = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS + 1));
        escrow.claim(id2, c);
        escrow.claim(id, c3);
        assertEq(payee.balance, 3 * PAYOUT, "three payouts");
    }

    function test_RejectsWrongDeviceLowSeverityAndClearedAlerts() public {
        uint256 id = _open(_terms(), 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE + 1, 3, "failure-critical", TS));
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.WrongDevice.selector, id, DEVICE, DEVICE + 1)
        );
        c = _anchored(GW, _alert(DEVICE, 2, "failure-warning", TS));
        _expectClaimRevert(id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.SeverityTooLow.selector, id, 3, 2));
        // The clearing of a critical alert carries the critical severity: it must not pay.
        c = _anchored(GW, _alert(DEVICE, 3, "failure-critical:clear", TS));
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.AlertCleared.selector, id, keccak256(c.preimage))
        );
        assertEq(payee.balance, 0, "nothing paid");
    }

    function test_RejectsSuspendedAndRevokedGateways() public {
        uint256 id = _open(_terms(), 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        vm.prank(op);
        reg.suspendGateway(GW);
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.GatewayNotActive.selector, GW, DeviceStatus.Suspended)
        );
        vm.prank(op);
        reg.resumeGateway(GW);
        escrow.check(id, c); // claimable again once resumed
        vm.prank(op);
        reg.revokeGateway(GW);
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.GatewayNotActive.selector, GW, DeviceStatus.Revoked)
        );
        c.header.gatewayId = keccak256("never registered");
        _expectClaimRevert(
            id,
            c,
            abi.encodeWithSelector(
                VigilMaintenanceEscrow.GatewayNotActive.selector, keccak256("never registered"), DeviceStatus.None
            )
        );
    }

    function test_RejectsGatewayOfAnotherSite() public {
        uint256 id = _open(_terms(), 3 ether);
        // A gateway registered by another site's operator, with the same key, attests the same alert.
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(OTHER_GW, _alert(DEVICE, 3, "failure-critical", TS));
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.WrongSite.selector, OTHER_GW, SITE, SITE2)
        );
    }

    function test_RejectsTamperedProofPreimageHeaderAndUnanchoredBatches() public {
        uint256 id = _open(_terms(), 3 ether);
        bytes memory warning = _alert(DEVICE, 2, "failure-warning", TS);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, warning);
        // Upgrading the severity of an attested warning changes the leaf: not included.
        c.preimage = _alert(DEVICE, 3, "failure-warning", TS);
        bytes32 forged = keccak256(c.preimage);
        _expectClaimRevert(id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.LeafNotIncluded.selector, GW, forged));
        // A genuine critical alert with a tampered proof, header or later hashes.
        c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS + 5));
        bytes32 leaf = keccak256(c.preimage);
        bytes memory notIncluded = abi.encodeWithSelector(VigilMaintenanceEscrow.LeafNotIncluded.selector, GW, leaf);
        c.proof[1] = bytes32(uint256(c.proof[1]) ^ 1);
        _expectClaimRevert(id, c, notIncluded);
        c.proof[1] = bytes32(uint256(c.proof[1]) ^ 1);
        c.header.leafCount += 1;
        _expectClaimRevert(id, c, notIncluded);
        c.header.leafCount -= 1;
        c.laterHeaderHashes = new bytes32[](1);
        c.laterHeaderHashes[0] = keccak256("made up");
        _expectClaimRevert(id, c, notIncluded);
        c.laterHeaderHashes = new bytes32[](0);
        escrow.claim(id, c);
        // A batch signed by the gateway key but never anchored does not pay.
        bytes memory p = _alert(DEVICE, 3, "failure-critical", TS + 9);
        bytes32 root = Hashes.commutativeKeccak256(keccak256(p), keccak256("x"));
        (uint64 seq, bytes32 head) = reg.headOf(GW);
        BatchHeader memory h = _header(GW, seq + 1, head, root);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = keccak256("x");
        c = VigilMaintenanceEscrow.AlertClaim({
            preimage: p, header: h, laterHeaderHashes: new bytes32[](0), proof: proof
        });
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.LeafNotIncluded.selector, GW, keccak256(p))
        );
    }

    function test_RuleModelAndTimeTerms() public {
        VigilMaintenanceEscrow.Terms memory t = _terms();
        t.minSeverity = 2;
        t.ruleHash = keccak256("failure-critical");
        t.modelHash = MODEL;
        t.notBeforeUs = TS;
        uint256 id = _open(t, 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 2, "failure-warning", TS));
        _expectClaimRevert(
            id,
            c,
            abi.encodeWithSelector(
                VigilMaintenanceEscrow.WrongRule.selector, id, t.ruleHash, keccak256("failure-warning")
            )
        );
        c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS - 1));
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.AlertTooEarly.selector, id, TS, TS - 1)
        );
        t.modelHash = keccak256("another model");
        uint256 id2 = _open(t, 1 ether);
        c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        _expectClaimRevert(
            id2, c, abi.encodeWithSelector(VigilMaintenanceEscrow.WrongModel.selector, id2, t.modelHash, MODEL)
        );
        escrow.claim(id, c);
        assertEq(payee.balance, PAYOUT, "the matching alert pays");
    }

    function test_FundingExpiryAndWithdrawal() public {
        uint256 id = _open(_terms(), 0);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        _expectClaimRevert(
            id, c, abi.encodeWithSelector(VigilMaintenanceEscrow.AgreementUnderfunded.selector, id, 0, PAYOUT)
        );
        vm.deal(address(0xF00D), 5 ether);
        vm.prank(address(0xF00D)); // anyone may fund
        escrow.fund{value: 1.5 ether}(id);
        escrow.claim(id, c);
        uint64 expiresAt = _terms().expiresAt;
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(VigilMaintenanceEscrow.AgreementNotExpired.selector, id, expiresAt));
        escrow.withdraw(id);
        vm.warp(expiresAt);
        VigilMaintenanceEscrow.AlertClaim memory late = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS + 7));
        _expectClaimRevert(
            id, late, abi.encodeWithSelector(VigilMaintenanceEscrow.AgreementExpired.selector, id, expiresAt)
        );
        vm.prank(payee);
        vm.expectRevert(abi.encodeWithSelector(VigilMaintenanceEscrow.NotClient.selector, id, payee));
        escrow.withdraw(id);
        uint256 before = client.balance;
        vm.prank(client);
        escrow.withdraw(id);
        assertEq(client.balance - before, 0.5 ether, "remaining balance back to the client");
        assertEq(escrow.getAgreement(id).balance, 0, "emptied");
        vm.expectRevert(abi.encodeWithSelector(VigilMaintenanceEscrow.AgreementUnknown.selector, uint256(9)));
        escrow.fund{value: 0}(9);
        _expectClaimRevert(9, c, abi.encodeWithSelector(VigilMaintenanceEscrow.AgreementUnknown.selector, uint256(9)));
    }

    function test_OpenValidatesTerms() public {
        VigilMaintenanceEscrow.Terms memory t = _terms();
        t.payee = payable(address(0));
        vm.expectRevert(abi.encodeWithSelector(VigilMaintenanceEscrow.InvalidTerms.selector, "payee is the zero address"));
        escrow.open(t);
        t = _terms();
        t.site = 0;
        vm.expectRevert(abi.encodeWithSelector(VigilMaintenanceEscrow.InvalidTerms.selector, "site is zero"));
        escrow.open(t);
        t = _terms();
        t.payout = 0;
        vm.expectRevert(abi.encodeWithSelector(VigilMaintenanceEscrow.InvalidTerms.selector, "payout is zero"));
        escrow.open(t);
        t = _terms();
        t.expiresAt = uint64(block.timestamp);
        vm.expectRevert(
            abi.encodeWithSelector(VigilMaintenanceEscrow.InvalidTerms.selector, "expiresAt is not in the future")
        );
        escrow.open(t);
        assertEq(escrow.agreementCount(), 0, "nothing opened");
    }

    function test_ReentrantPayeeIsPaidOnce() public {
        ReentrantPayee r = new ReentrantPayee();
        VigilMaintenanceEscrow.Terms memory t = _terms();
        t.payee = payable(address(r));
        uint256 id = _open(t, 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        r.arm(escrow, id, c);
        escrow.claim(id, c);
        assertTrue(r.reentryFailed(), "re-entry refused");
        assertEq(address(r).balance, PAYOUT, "paid once");
        assertEq(escrow.getAgreement(id).balance, 2 ether, "balance");
    }

    function test_RefusingPayeeRevertsTheClaim() public {
        VigilMaintenanceEscrow.Terms memory t = _terms();
        t.payee = payable(address(new RefusingPayee()));
        uint256 id = _open(t, 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        vm.expectRevert(bytes("no"));
        escrow.claim(id, c);
        assertTrue(!escrow.isClaimed(id, keccak256(c.preimage)), "not marked");
    }

    // ---------------------------------------------------------------- the decoder

    function test_DecoderRejectsNonCanonicalPreimages() public {
        bytes memory p = _alert(DEVICE, 3, "failure-critical", TS); // body 99 bytes: odd, no pad
        assertEq(p.length, 99, "fixture length");
        harness.decode(p);
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(0)));
        harness.decode("");
        bytes memory q = bytes.concat(p);
        q[0] = 0x02;
        vm.expectRevert(abi.encodeWithSelector(NotAnAlertLeaf.selector, uint8(2)));
        harness.decode(q);
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(100)));
        harness.decode(bytes.concat(p, hex"00")); // an extra (pad) byte the body does not need
        bytes memory odd = _alert(DEVICE, 3, "failure-crit", TS); // body 95: odd, no pad
        bytes memory padded = _alert(DEVICE, 3, "failure-criti", TS); // body 96: padded to 97
        assertEq(padded.length, 97, "padded fixture");
        harness.decode(odd);
        harness.decode(padded);
        padded[96] = 0x01;
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(97)));
        harness.decode(padded);
        q = bytes.concat(p);
        q[80] = 0x20; // a space in the rule
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(99)));
        harness.decode(q);
        q = _alert(DEVICE, 3, "failure-critical", uint64(1 << 53));
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(99)));
        harness.decode(q);
        q = bytes.concat(p);
        q[78] = 0x00; // rule length 0
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(99)));
        harness.decode(q);
        q = new bytes(84); // one byte short of the shortest ALERT preimage
        q[0] = 0x03;
        vm.expectRevert(abi.encodeWithSelector(MalformedAlertLeaf.selector, uint256(84)));
        harness.decode(q);
    }

    /// Decoding inverts the encoding for every device, time, severity, rule and score.
    function testFuzz_DecoderInvertsTheEncoder(
        uint32 device,
        uint64 ts,
        uint8 severity,
        uint8 ruleLen,
        bytes32 seed,
        bool cleared,
        uint32 score
    ) public view {
        ts = uint64(bound(ts, 0, (1 << 53) - 1));
        ruleLen = uint8(bound(ruleLen, 1, cleared ? 58 : 64));
        bytes memory rule = new bytes(ruleLen);
        for (uint256 i = 0; i < ruleLen; ++i) {
            rule[i] = bytes1(uint8(0x21 + uint8(uint256(keccak256(abi.encode(seed, i))) % 94)));
        }
        bytes memory full = cleared ? bytes.concat(rule, ":clear") : rule;
        bytes memory p = abi.encodePacked(uint8(3), MODEL, WINDOW, device, ts, severity, uint8(full.length), full, score);
        if (p.length % 2 == 0) p = abi.encodePacked(p, uint8(0));
        AlertLeaf memory a = harness.decode(p);
        assertEq(a.leaf, keccak256(p), "leaf");
        assertEq(a.modelHash, MODEL, "model");
        assertEq(a.inputWindowHash, WINDOW, "window");
        assertEq(a.deviceId, device, "device");
        assertEq(a.timestampUs, ts, "ts");
        assertEq(a.severity, severity, "severity");
        assertEq(a.scoreBits, score, "score");
        // A raised rule that itself ends in ":clear" cannot come from a manifest (ids are [a-z0-9-]).
        bool endsClear = ruleLen > 6 && keccak256(_slice(rule, ruleLen - 6, ruleLen)) == keccak256(":clear");
        assertTrue(a.cleared == (cleared || endsClear), "cleared");
        if (!endsClear) assertEq(a.ruleHash, keccak256(rule), "rule hash without :clear");
    }

    /// Flipping any bit of an attested preimage never pays.
    function testFuzz_AnyTamperedPreimageNeverPays(uint256 pos, uint8 bit) public {
        uint256 id = _open(_terms(), 3 ether);
        VigilMaintenanceEscrow.AlertClaim memory c = _anchored(GW, _alert(DEVICE, 3, "failure-critical", TS));
        pos = bound(pos, 0, c.preimage.length - 1);
        c.preimage[pos] = bytes1(uint8(c.preimage[pos]) ^ uint8(1 << (bit % 8)));
        try escrow.claim(id, c) {
            revert("a tampered preimage paid");
        } catch {}
        assertEq(payee.balance, 0, "nothing paid");
    }

    function _slice(bytes memory b, uint256 from, uint256 to) internal pure returns (bytes memory out) {
        out = new bytes(to - from);
        for (uint256 i = from; i < to; ++i) {
            out[i - from] = b[i];
        }
    }
}
