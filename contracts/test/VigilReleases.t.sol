// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {VigilReleases} from "../src/VigilReleases.sol";
import {ReleaseKind, ReleaseStatus} from "../src/VigilTypes.sol";

/// @dev Attack tests of issue 11: stale approvals and an exhausted version line.
contract VigilReleasesAttackTest is Base {
    bytes32 internal constant TARGET = keccak256("hw:rpi4");
    address internal approver4 = address(0xA004);

    function _propose(uint64 version) internal returns (uint256 id) {
        VigilReleases.ReleaseInput memory input = _release(version, TARGET);
        vm.prank(manager);
        id = rel.propose(input);
    }

    function _approve(address who, uint256 id) internal {
        vm.prank(who);
        rel.approve(id);
    }

    function _setApprover(address who, bool on) internal {
        bytes32 role = reg.RELEASE_APPROVER_ROLE();
        vm.prank(admin);
        if (on) reg.grantRole(role, who);
        else reg.revokeRole(role, who);
    }

    function _status(uint256 id) internal view returns (ReleaseStatus) {
        return rel.getRelease(id).status;
    }

    /// The exact attack: approver 1 approves, loses the role, approver 2 approves; with M = 2 the release
    /// used to become Active. Now it stays Proposed until a second current approver approves.
    function test_ApprovalOfRevokedApproverStopsCounting() public {
        uint256 id = _propose(1);
        _approve(approver1, id);
        assertEq(rel.currentApprovals(id), 1, "one counting approval");
        _setApprover(approver1, false);
        assertEq(rel.currentApprovals(id), 0, "revoked approver no longer counts");
        _approve(approver2, id);
        assertTrue(_status(id) == ReleaseStatus.Proposed, "stale approval must not activate");
        assertEq(rel.currentApprovals(id), 1, "only approver 2 counts");
        assertEq(rel.getRelease(id).approvals, 2, "both approvals are recorded");
        assertTrue(rel.hasApproved(id, approver1), "the stale approval stays recorded");
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), 0, "no current release");
        vm.expectRevert(abi.encodeWithSelector(VigilReleases.BelowThreshold.selector, id, uint16(1), uint16(2)));
        rel.activate(id);
        // The revoked approver cannot approve again either.
        bytes32 role = reg.RELEASE_APPROVER_ROLE();
        vm.prank(approver1);
        vm.expectRevert(abi.encodeWithSelector(VigilReleases.MissingRole.selector, approver1, role));
        rel.approve(id);
        _approve(approver3, id);
        assertTrue(_status(id) == ReleaseStatus.Active, "two current approvers activate");
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), id, "current release");
        address[] memory list = rel.approversOf(id);
        assertEq(list.length, 3, "three recorded approvers");
        assertEq(list[0], approver1, "in order");
        assertEq(list[2], approver3, "in order");
    }

    /// Lowering the threshold never activates through stale approvals, neither by itself nor via activate().
    function test_LoweringThresholdDoesNotActivateThroughStaleApprovals() public {
        vm.prank(admin);
        rel.setApprovalThreshold(3);
        uint256 id = _propose(1);
        _approve(approver1, id);
        _approve(approver2, id);
        _setApprover(approver1, false);
        vm.prank(admin);
        rel.setApprovalThreshold(2);
        assertTrue(_status(id) == ReleaseStatus.Proposed, "setting the threshold activates nothing");
        vm.expectRevert(abi.encodeWithSelector(VigilReleases.BelowThreshold.selector, id, uint16(1), uint16(2)));
        rel.activate(id);
        vm.prank(admin);
        rel.setApprovalThreshold(1);
        rel.activate(id); // one current approval (approver 2) meets M = 1
        assertTrue(_status(id) == ReleaseStatus.Active, "activated by the re-check");
    }

    /// After the threshold is lowered, anyone can activate a release whose current approvals now suffice.
    function test_AnyoneActivatesAfterThresholdLowered(address anyone) public {
        vm.prank(admin);
        rel.setApprovalThreshold(3);
        uint256 id = _propose(1);
        _approve(approver1, id);
        _approve(approver2, id);
        assertTrue(_status(id) == ReleaseStatus.Proposed, "2 of 3");
        vm.prank(admin);
        rel.setApprovalThreshold(2);
        vm.prank(anyone);
        rel.activate(id);
        assertTrue(_status(id) == ReleaseStatus.Active, "2 of 2");
        vm.expectRevert(abi.encodeWithSelector(VigilReleases.ReleaseNotInStatus.selector, id, ReleaseStatus.Active));
        rel.activate(id);
        vm.expectRevert(abi.encodeWithSelector(VigilReleases.ReleaseUnknown.selector, uint256(99)));
        rel.activate(99);
    }

    /// Activation is final: revoking an approver afterwards does not deactivate (revoke the release).
    function test_ActivationIsFinal() public {
        uint256 id = _propose(1);
        _approve(approver1, id);
        _approve(approver2, id);
        _setApprover(approver1, false);
        _setApprover(approver2, false);
        assertTrue(_status(id) == ReleaseStatus.Active, "still active");
        assertEq(rel.currentApprovals(id), 0, "no current approvals");
        vm.prank(manager);
        rel.revoke(id, "approvers compromised");
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), 0, "revoked");
    }

    /// An approver re-granted the role counts again (documented: the admin restored that trust).
    function test_RegrantedApproverCountsAgain() public {
        uint256 id = _propose(1);
        _approve(approver1, id);
        _setApprover(approver1, false);
        _approve(approver2, id);
        assertTrue(_status(id) == ReleaseStatus.Proposed, "1 of 2");
        _setApprover(approver1, true);
        assertEq(rel.currentApprovals(id), 2, "counts again");
        rel.activate(id);
        assertTrue(_status(id) == ReleaseStatus.Active, "activated by the re-check");
    }

    /// A new approver (granted after the proposal) counts like any other.
    function test_NewApproverCounts() public {
        uint256 id = _propose(1);
        _approve(approver1, id);
        _setApprover(approver4, true);
        _approve(approver4, id);
        assertTrue(_status(id) == ReleaseStatus.Active, "2 of 2");
    }

    /// Revoking the current release leaves none current; no release with a lower version becomes current
    /// again, whether it activated before or after the revocation (the current version never decreases:
    /// gateways keep what they run rather than roll back); a higher version does.
    function test_RevokedCurrentDoesNotFallBackToOlder() public {
        uint256 v1 = _propose(1);
        uint256 v2 = _propose(2);
        uint256 v3 = _propose(3);
        _approve(approver1, v3);
        _approve(approver2, v3);
        _approve(approver1, v1);
        _approve(approver2, v1);
        assertTrue(_status(v1) == ReleaseStatus.Active, "v1 active");
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), v3, "v3 is current, not the later-activated v1");
        vm.prank(manager);
        rel.revoke(v3, "regression");
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), 0, "no fallback to v1");
        _approve(approver1, v2);
        _approve(approver2, v2);
        assertTrue(_status(v2) == ReleaseStatus.Active, "v2 active");
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), 0, "v2 < revoked v3 does not become current");
        uint256 v4 = _propose(4);
        _approve(approver1, v4);
        _approve(approver3, v4);
        assertEq(rel.activeRelease(ReleaseKind.Model, TARGET), v4, "a higher version is current");
    }

    /// The exact attack: proposing 2^64 - 1 and revoking it used to block every later proposal.
    function test_VersionLineCannotBeExhausted() public {
        uint64 maxStep = rel.MAX_VERSION_STEP();
        assertEq(maxStep, 1 << 32, "documented step");
        VigilReleases.ReleaseInput memory input = _release(type(uint64).max, TARGET);
        vm.prank(manager);
        vm.expectRevert(
            abi.encodeWithSelector(
                VigilReleases.VersionStepTooLarge.selector, ReleaseKind.Model, TARGET, uint64(0), type(uint64).max
            )
        );
        rel.propose(input);
        // The largest jump allowed, revoked: the next proposal still fits.
        uint256 big = _propose(maxStep);
        vm.prank(manager);
        rel.revoke(big, "rogue manager");
        input.version = 2 * maxStep + 1;
        vm.prank(manager);
        vm.expectRevert(
            abi.encodeWithSelector(
                VigilReleases.VersionStepTooLarge.selector, ReleaseKind.Model, TARGET, maxStep, 2 * maxStep + 1
            )
        );
        rel.propose(input);
        uint256 next = _propose(maxStep + 1);
        assertEq(rel.getRelease(next).version, maxStep + 1, "channel still usable");
        // Another (kind, target) has its own line starting at 0.
        input = _release(maxStep, keccak256("hw:other"));
        input.kind = ReleaseKind.Firmware;
        vm.prank(manager);
        rel.propose(input);
    }

    /// However the manager picks versions, the line grows by at most MAX_VERSION_STEP per proposal, so
    /// exhausting 2^64 - 1 takes 2^32 proposals.
    function testFuzz_VersionLineGrowsAtMostOneStepPerProposal(uint64[6] memory versions) public {
        uint64 maxStep = rel.MAX_VERSION_STEP();
        uint256 accepted;
        for (uint256 i = 0; i < versions.length; ++i) {
            VigilReleases.ReleaseInput memory input = _release(versions[i], TARGET);
            vm.prank(manager);
            try rel.propose(input) {
                ++accepted;
            } catch {}
        }
        uint256 latest = rel.latestVersion(ReleaseKind.Model, TARGET);
        assertTrue(latest <= accepted * maxStep, "at most one step per accepted proposal");
        assertEq(rel.releaseCount(), accepted, "count");
    }
}
