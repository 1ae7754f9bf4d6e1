// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {VigilReleases} from "../src/VigilReleases.sol";
import {ReleaseKind, ReleaseStatus} from "../src/VigilTypes.sol";

/// @dev Drives VigilReleases: proposals (valid steps, zero and oversized ones), approvals by a pool of four
/// accounts whose approver role the admin grants and revokes, threshold changes, activate() re-checks
/// by anyone, revocations. Ghost state mirrors who holds the role and who approved; every activation is
/// checked against it at the moment it happens.
contract ReleasesHandler is Base {
    bytes32 internal constant TARGET = keccak256("hw:rpi4");
    uint256 internal constant MAX_RELEASES = 4; // few releases, so approvals and role changes meet

    address[4] internal pool;
    mapping(address => bool) public ghostApprover;
    uint16 public ghostThreshold = 2;
    mapping(uint256 => address[]) internal ghostApprovals;
    uint256 public releases;
    uint64 public maxVersion;
    uint256 public activations;
    /// The highest-version release seen activating (what activeRelease must name while it is Active).
    uint256 public highestActivatedId;
    uint64 internal highestActivatedVersion;

    bool public versionWentBack;
    /// A proposal with a version step of 0 or above MAX_VERSION_STEP was accepted.
    bool public stepBoundBroken;
    /// A proposal with a step in 1..MAX_VERSION_STEP was refused.
    bool public validProposalRefused;
    /// An Active release had fewer than `threshold` approvals by accounts that held the role at activation.
    bool public activatedWithoutQuorum;
    /// An approval brought the current approvals to the threshold but the release stayed Proposed.
    bool public quorumNotActivated;
    /// activate() refused a Proposed release whose current approvals reach the threshold.
    bool public activateRefusedWithQuorum;
    /// An account without the approver role approved.
    bool public unauthorisedApproval;

    constructor() {
        _deploy();
        pool = [approver1, approver2, approver3, address(0xA004)];
        ghostApprover[approver1] = true;
        ghostApprover[approver2] = true;
        ghostApprover[approver3] = true;
    }

    /// @dev The fuzzer calls every public function of the handler: make the fixture's setUp a no-op here.
    function setUp() public override {}

    function releasesContract() external view returns (VigilReleases) {
        return rel;
    }

    /// Proposes latest + step: mostly valid steps, sometimes 0 or above MAX_VERSION_STEP.
    function propose(uint64 seed) external {
        if (releases >= MAX_RELEASES) return;
        uint64 maxStep = rel.MAX_VERSION_STEP();
        uint64 latest = rel.latestVersion(ReleaseKind.Model, TARGET);
        uint256 mode = seed % 8;
        uint256 step = mode == 0 ? 0 : mode == 1 ? uint256(maxStep) + 1 + (seed >> 3) : 1 + (seed >> 3) % maxStep;
        if (uint256(latest) + step > type(uint64).max) return;
        uint64 version = uint64(latest + step);
        string[] memory uris = new string[](1);
        uris[0] = "https://releases.example/model.onnx";
        VigilReleases.ReleaseInput memory input = VigilReleases.ReleaseInput({
            kind: ReleaseKind.Model,
            target: TARGET,
            version: version,
            contentHash: keccak256(abi.encode(version)),
            size: 4096,
            trainingDataHash: 0,
            uris: uris,
            metrics: ""
        });
        vm.prank(manager);
        try rel.propose(input) {
            if (version <= maxVersion) versionWentBack = true;
            if (step == 0 || step > maxStep) stepBoundBroken = true;
            maxVersion = version;
            releases += 1;
        } catch {
            if (step >= 1 && step <= maxStep) validProposalRefused = true;
        }
    }

    /// Approvals by the handler's ghost approvers that count now.
    function _quorum(uint256 id) internal view returns (uint256 n) {
        address[] storage list = ghostApprovals[id];
        for (uint256 i = 0; i < list.length; ++i) {
            if (ghostApprover[list[i]]) ++n;
        }
    }

    function _activated(uint256 id) internal {
        activations += 1;
        uint64 v = rel.getRelease(id).version;
        if (v > highestActivatedVersion) (highestActivatedVersion, highestActivatedId) = (v, id);
    }

    function approve(uint256 id, uint256 who) external {
        if (releases == 0) return;
        id = id % releases + 1;
        address a = pool[who % pool.length];
        bool wasActive = rel.getRelease(id).status == ReleaseStatus.Active;
        vm.prank(a);
        try rel.approve(id) {
            if (!ghostApprover[a]) unauthorisedApproval = true;
            ghostApprovals[id].push(a);
            bool active = rel.getRelease(id).status == ReleaseStatus.Active;
            if (active && !wasActive) {
                _activated(id);
                if (_quorum(id) < ghostThreshold) activatedWithoutQuorum = true;
            }
            if (!active && _quorum(id) >= ghostThreshold) quorumNotActivated = true;
        } catch {}
    }

    /// The re-check anyone may call.
    function activate(uint256 id, address caller) external {
        if (releases == 0) return;
        id = id % releases + 1;
        bool proposed = rel.getRelease(id).status == ReleaseStatus.Proposed;
        vm.prank(caller);
        try rel.activate(id) {
            _activated(id);
            if (!proposed || _quorum(id) < ghostThreshold) activatedWithoutQuorum = true;
        } catch {
            if (proposed && _quorum(id) >= ghostThreshold) activateRefusedWithQuorum = true;
        }
    }

    function setApprover(uint256 who, bool on) external {
        address a = pool[who % pool.length];
        bytes32 role = reg.RELEASE_APPROVER_ROLE();
        vm.prank(admin);
        if (on) reg.grantRole(role, a);
        else reg.revokeRole(role, a);
        ghostApprover[a] = on;
    }

    function setThreshold(uint16 t) external {
        t = uint16(bound(t, 1, 3));
        vm.prank(admin);
        rel.setApprovalThreshold(t);
        ghostThreshold = t;
    }

    function revokeRelease(uint256 id) external {
        if (releases == 0) return;
        vm.prank(manager);
        try rel.revoke(id % releases + 1, "bad model") {} catch {}
    }
}

/// @dev Invariants of the approval rule and the version line (FOUNDRY_PROFILE=ci: 256 runs x depth 50).
contract VigilReleasesInvariantTest {
    ReleasesHandler internal handler;

    function setUp() public {
        handler = new ReleasesHandler();
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    /// An Active release always had >= threshold approvals by accounts that held the approver role when it
    /// activated (threshold as it was then); an approval or activate() that reaches the threshold activates;
    /// only approvers approve.
    function invariant_activationNeedsCurrentApprovers() public view {
        require(!handler.activatedWithoutQuorum(), "activated without a quorum of current approvers");
        require(!handler.quorumNotActivated(), "quorum reached on approve but not activated");
        require(!handler.activateRefusedWithQuorum(), "activate refused a release with quorum");
        require(!handler.unauthorisedApproval(), "approval without the role");
        VigilReleases rel = handler.releasesContract();
        uint256 n = rel.releaseCount();
        for (uint256 id = 1; id <= n; ++id) {
            VigilReleases.Release memory r = rel.getRelease(id);
            require(rel.currentApprovals(id) <= r.approvals, "more counting than recorded approvals");
            require(rel.approversOf(id).length == r.approvals, "approver list length");
        }
    }

    /// Release versions never go backwards, never step by 0 or more than MAX_VERSION_STEP, and the line
    /// grows by at most one step per proposal (so it cannot be exhausted). The current release is the
    /// highest-version release ever activated while it is Active, else none (no fallback to older ones).
    function invariant_releaseVersions() public view {
        require(!handler.versionWentBack(), "version went backwards");
        require(!handler.stepBoundBroken(), "step bound broken");
        require(!handler.validProposalRefused(), "valid proposal refused");
        VigilReleases rel = handler.releasesContract();
        bytes32 target = keccak256("hw:rpi4");
        uint256 n = rel.releaseCount();
        require(uint256(rel.latestVersion(ReleaseKind.Model, target)) <= n * rel.MAX_VERSION_STEP(), "line exhausted");
        uint256 current = rel.activeRelease(ReleaseKind.Model, target);
        uint256 h = handler.highestActivatedId();
        bool hActive = h != 0 && rel.getRelease(h).status == ReleaseStatus.Active;
        require(current == (hActive ? h : 0), "current is not the highest activated release");
    }
}
