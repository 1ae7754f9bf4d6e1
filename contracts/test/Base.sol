// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {VigilRegistry} from "../src/VigilRegistry.sol";
import {VigilReleases, IVigilRegistryForReleases} from "../src/VigilReleases.sol";
import {BatchHeader, CompactSignature, KeyType, ReleaseKind} from "../src/VigilTypes.sol";

/// @dev Shared fixture: a registry + releases, one site operator, a secp256k1 and a P-256 gateway.
abstract contract Base is Test {
    uint256 internal constant SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551;

    VigilRegistry internal reg;
    VigilReleases internal rel;
    address internal admin = address(0xA11CE);
    address internal op = address(0x0B0B);
    address internal manager = address(0x3A3A);
    address internal approver1 = address(0xA001);
    address internal approver2 = address(0xA002);
    address internal approver3 = address(0xA003);
    bytes32 internal constant SITE = keccak256("site:plant-1");
    bytes32 internal constant GW = keccak256("gw:secp");
    bytes32 internal constant PGW = keccak256("gw:p256");
    uint256 internal constant GW_PK = 0xC0FFEE;
    uint256 internal constant PGW_PK = 0xBEEF;

    function setUp() public virtual {
        _deploy();
    }

    function _deploy() internal {
        vm.startPrank(admin);
        reg = new VigilRegistry(1 days, admin);
        rel = new VigilReleases(IVigilRegistryForReleases(address(reg)), 2, 1 << 30);
        reg.grantRole(reg.operatorRole(SITE), op);
        reg.grantRole(reg.RELEASE_MANAGER_ROLE(), manager);
        reg.grantRole(reg.RELEASE_APPROVER_ROLE(), approver1);
        reg.grantRole(reg.RELEASE_APPROVER_ROLE(), approver2);
        reg.grantRole(reg.RELEASE_APPROVER_ROLE(), approver3);
        vm.stopPrank();
        _register(reg, GW, KeyType.Secp256k1, GW_PK);
        _register(reg, PGW, KeyType.P256, PGW_PK);
    }

    function _pubKey(KeyType t, uint256 pk) internal pure returns (bytes memory) {
        if (t == KeyType.Secp256k1) return abi.encodePacked(vm.addr(pk));
        (uint256 x, uint256 y) = vm.publicKeyP256(pk);
        return abi.encodePacked(x, y);
    }

    function _register(VigilRegistry r, bytes32 id, KeyType t, uint256 pk) internal {
        vm.prank(op);
        r.registerGateway(id, SITE, t, _pubKey(t, pk), "ipfs://meta");
    }

    function _header(bytes32 id, uint64 seq, bytes32 prev, bytes32 root) internal pure returns (BatchHeader memory h) {
        h = BatchHeader({
            gatewayId: id,
            seq: seq,
            prevHead: prev,
            root: root,
            leafCount: 10_000,
            firstTimestamp: 1_767_225_600_000_000 + (seq % 1_000_000) * 60_000_000,
            lastTimestamp: 1_767_225_600_000_000 + (seq % 1_000_000) * 60_000_000 + 59_999_999,
            modelHash: keccak256("model:v1")
        });
    }

    /// @dev Independent re-implementation of the EIP-712 struct hash (not calling the contract).
    function _structHash(BatchHeader memory h) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256(
                    "BatchHeader(bytes32 gatewayId,uint64 seq,bytes32 prevHead,bytes32 root,uint32 leafCount,uint64 firstTimestamp,uint64 lastTimestamp,bytes32 modelHash)"
                ),
                h.gatewayId,
                h.seq,
                h.prevHead,
                h.root,
                h.leafCount,
                h.firstTimestamp,
                h.lastTimestamp,
                h.modelHash
            )
        );
    }

    function _digest(VigilRegistry r, BatchHeader memory h) internal view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("VigilRegistry"),
                keccak256("1"),
                block.chainid,
                address(r)
            )
        );
        return keccak256(abi.encodePacked(hex"1901", domain, _structHash(h)));
    }

    function _signK(uint256 pk, bytes32 digest) internal pure returns (CompactSignature memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return CompactSignature(r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
    }

    function _signP(uint256 pk, bytes32 digest) internal pure returns (CompactSignature memory) {
        (bytes32 r, bytes32 s) = vm.signP256(pk, digest);
        if (uint256(s) > P256_N / 2) s = bytes32(P256_N - uint256(s)); // normalise to low s
        return CompactSignature(r, s);
    }

    function _sign(KeyType t, uint256 pk, bytes32 digest) internal pure returns (CompactSignature memory) {
        return t == KeyType.Secp256k1 ? _signK(pk, digest) : _signP(pk, digest);
    }

    function _release(uint64 version, bytes32 target) internal pure returns (VigilReleases.ReleaseInput memory r) {
        string[] memory uris = new string[](1);
        uris[0] = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        r = VigilReleases.ReleaseInput({
            kind: ReleaseKind.Model,
            target: target,
            version: version,
            contentHash: sha256("model bytes"),
            size: 4096,
            trainingDataHash: keccak256("dataset"),
            uris: uris,
            metrics: '{"f1":0.9}'
        });
    }

    function _chain(bytes32 prev, BatchHeader memory h) internal pure returns (bytes32) {
        return keccak256(abi.encode(prev, _structHash(h)));
    }
}
