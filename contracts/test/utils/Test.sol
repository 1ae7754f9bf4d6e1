// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @dev The forge cheatcodes these tests use (forge-std is not vendored; no network at test time).
interface Vm {
    function prank(address) external;
    function startPrank(address) external;
    function stopPrank() external;
    function expectRevert(bytes calldata) external;
    function expectRevert() external;
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function signP256(uint256 privateKey, bytes32 digest) external pure returns (bytes32 r, bytes32 s);
    function publicKeyP256(uint256 privateKey) external pure returns (uint256 x, uint256 y);
    function addr(uint256 privateKey) external pure returns (address);
    function warp(uint256) external;
    function chainId(uint256) external;
    function assume(bool) external pure;
    function deal(address account, uint256 newBalance) external;
}

/// @dev Minimal base: cheatcodes, assertions that revert, and `bound`.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function assertTrue(bool c, string memory m) internal pure {
        require(c, m);
    }

    function assertEq(uint256 a, uint256 b, string memory m) internal pure {
        require(a == b, m);
    }

    function assertEq(bytes32 a, bytes32 b, string memory m) internal pure {
        require(a == b, m);
    }

    function assertEq(address a, address b, string memory m) internal pure {
        require(a == b, m);
    }

    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (max - min == type(uint256).max) return x;
        return min + (x % (max - min + 1));
    }
}
