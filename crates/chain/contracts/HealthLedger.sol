// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

/// @title HealthLedger
/// @notice The source of truth for HealthLedger: profiles of patients, doctors and
/// diagnostic centers keyed by HH number, pointers to medical records (CIDs and
/// metadata, never medical content), access grants that belong to the patient,
/// and anchors of the off-chain access log.
/// @dev Every state change emits an event that carries all the data needed to
/// rebuild the state from logs alone. Consent-requiring writes take the consenting
/// wallet either as `msg.sender` (empty `signature`) or as the signer of an
/// EIP-712 message relayed by anyone; each relayed signature consumes the signer's
/// nonce, so it works once.
contract HealthLedger {
    // ------------------------------------------------------------------ types

    /// Role codes; 0 means "not registered". They match `Role::code` in Rust.
    uint8 public constant ROLE_NONE = 0;
    uint8 public constant ROLE_PATIENT = 1;
    uint8 public constant ROLE_DOCTOR = 2;
    uint8 public constant ROLE_DIAGNOSTIC_CENTER = 3;

    struct Patient {
        uint32 hh;
        address wallet;
        string name;
        /// ISO date, YYYY-MM-DD.
        string dateOfBirth;
        string gender;
        /// One of A+, A-, B+, B-, AB+, AB-, O+, O-.
        string bloodGroup;
        string homeAddress;
        string email;
    }

    struct Doctor {
        uint32 hh;
        address wallet;
        string name;
        string specialization;
        string hospital;
        string email;
    }

    struct DiagnosticCenter {
        uint32 hh;
        address wallet;
        string name;
        string location;
        string email;
    }

    struct RecordMeta {
        string testName;
        string recordType;
        /// ISO date, YYYY-MM-DD.
        string date;
        string contentType;
        uint64 size;
    }

    struct Record {
        uint32 patientHH;
        uint64 recordId;
        uint32 creatorHH;
        /// The binary CID of the encrypted object in the vault.
        bytes cid;
        RecordMeta meta;
        uint64 createdAt;
    }

    struct Grant {
        uint64 grantedAt;
        /// 0 means the grant never expires.
        uint64 expiresAt;
        /// 0 means the grant is not revoked.
        uint64 revokedAt;
    }

    // ----------------------------------------------------------------- errors

    error AlreadyRegistered(uint32 hh, address wallet);
    error NotRegistered(uint32 hh);
    error NotAuthorized(address caller);
    error InvalidSignature(address expectedSigner);
    error Expired(uint64 deadline, uint64 blockTime);
    error RecordExists(uint32 patientHH, uint64 recordId);
    error UnknownRecord(uint32 patientHH, uint64 recordId);
    error NoActiveGrant(uint32 patientHH, uint32 granteeHH);
    error InvalidInput(string reason);

    // ----------------------------------------------------------------- events

    event PatientRegistered(uint32 indexed hh, address indexed wallet, Patient profile);
    event DoctorRegistered(uint32 indexed hh, address indexed wallet, Doctor profile);
    event DiagnosticCenterRegistered(uint32 indexed hh, address indexed wallet, DiagnosticCenter profile);
    /// `profile` is `abi.encode` of the role's profile struct.
    event ProfileUpdated(uint32 indexed hh, uint8 indexed role, bytes profile);
    event RecordCreated(
        uint32 indexed patientHH,
        uint64 indexed recordId,
        uint32 indexed creatorHH,
        bytes cid,
        RecordMeta meta,
        uint64 createdAt
    );
    event AccessGranted(uint32 indexed patientHH, uint32 indexed granteeHH, uint64 grantedAt, uint64 expiresAt);
    event AccessRevoked(uint32 indexed patientHH, uint32 indexed granteeHH, uint64 revokedAt);
    event AuditAnchored(bytes32 indexed digest, uint64 lastSeq, uint64 anchoredAt);
    event RegistrarAdded(address indexed registrar);
    event RegistrarRemoved(address indexed registrar);

    // ---------------------------------------------------------------- EIP-712

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("HealthLedger");
    bytes32 private constant VERSION_HASH = keccak256("1");
    bytes32 public constant UPDATE_PROFILE_TYPEHASH =
        keccak256("UpdateProfile(uint32 hh,uint8 role,bytes32 profileHash,uint256 nonce,uint64 deadline)");
    bytes32 public constant CREATE_RECORD_TYPEHASH = keccak256(
        "CreateRecord(uint32 patientHH,uint64 recordId,uint32 creatorHH,bytes32 contentHash,uint256 nonce,uint64 deadline)"
    );
    bytes32 public constant GRANT_ACCESS_TYPEHASH = keccak256(
        "GrantAccess(uint32 patientHH,uint32 granteeHH,uint64 expiresAt,uint256 nonce,uint64 deadline)"
    );
    bytes32 public constant REVOKE_ACCESS_TYPEHASH =
        keccak256("RevokeAccess(uint32 patientHH,uint32 granteeHH,uint256 nonce,uint64 deadline)");
    /// Half the secp256k1 order: signatures with a larger `s` are malleable copies.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ------------------------------------------------------------------ state

    address public immutable admin;
    mapping(address => bool) public isRegistrar;

    mapping(uint32 => uint8) public roleOf;
    mapping(uint32 => address) public walletOf;
    mapping(address => uint32) public hhOf;
    mapping(uint8 => uint32[]) private byRole;
    mapping(uint32 => Patient) private patients;
    mapping(uint32 => Doctor) private doctors;
    mapping(uint32 => DiagnosticCenter) private centers;

    mapping(uint256 => Record) private records;
    uint256[] private recordKeys;
    mapping(uint32 => uint64[]) private patientRecords;

    mapping(uint32 => mapping(uint32 => Grant)) private grants;
    mapping(uint32 => uint32[]) private granteeList;

    mapping(address => uint256) public nonces;
    uint64 public lastAnchoredSeq;

    constructor() {
        admin = msg.sender;
        isRegistrar[msg.sender] = true;
        emit RegistrarAdded(msg.sender);
    }

    // -------------------------------------------------------------- registrars

    function addRegistrar(address registrar) external {
        if (msg.sender != admin) revert NotAuthorized(msg.sender);
        if (registrar == address(0)) revert InvalidInput("registrar is the zero address");
        if (isRegistrar[registrar]) revert InvalidInput("already a registrar");
        isRegistrar[registrar] = true;
        emit RegistrarAdded(registrar);
    }

    function removeRegistrar(address registrar) external {
        if (msg.sender != admin) revert NotAuthorized(msg.sender);
        if (!isRegistrar[registrar]) revert InvalidInput("not a registrar");
        isRegistrar[registrar] = false;
        emit RegistrarRemoved(registrar);
    }

    // ------------------------------------------------------------ registration

    function registerPatient(Patient calldata p) external {
        _register(p.hh, p.wallet, ROLE_PATIENT, p.name);
        patients[p.hh] = p;
        emit PatientRegistered(p.hh, p.wallet, p);
    }

    function registerDoctor(Doctor calldata d) external {
        _register(d.hh, d.wallet, ROLE_DOCTOR, d.name);
        doctors[d.hh] = d;
        emit DoctorRegistered(d.hh, d.wallet, d);
    }

    function registerDiagnosticCenter(DiagnosticCenter calldata c) external {
        _register(c.hh, c.wallet, ROLE_DIAGNOSTIC_CENTER, c.name);
        centers[c.hh] = c;
        emit DiagnosticCenterRegistered(c.hh, c.wallet, c);
    }

    function _register(uint32 hh, address wallet, uint8 role, string calldata name) private {
        if (!isRegistrar[msg.sender] && msg.sender != wallet) revert NotAuthorized(msg.sender);
        if (hh < 100000 || hh > 999999) revert InvalidInput("HH number must be 100000 to 999999");
        if (wallet == address(0)) revert InvalidInput("wallet is the zero address");
        if (bytes(name).length == 0) revert InvalidInput("name is empty");
        if (roleOf[hh] != ROLE_NONE || hhOf[wallet] != 0) revert AlreadyRegistered(hh, wallet);
        roleOf[hh] = role;
        walletOf[hh] = wallet;
        hhOf[wallet] = hh;
        byRole[role].push(hh);
    }

    // ---------------------------------------------------------------- updates

    function updatePatient(Patient calldata p, uint64 deadline, bytes calldata signature) external {
        _checkUpdate(p.hh, p.wallet, ROLE_PATIENT, p.name);
        bytes memory encoded = abi.encode(p);
        _consentUpdate(p.hh, p.wallet, ROLE_PATIENT, encoded, deadline, signature);
        patients[p.hh] = p;
        emit ProfileUpdated(p.hh, ROLE_PATIENT, encoded);
    }

    function updateDoctor(Doctor calldata d, uint64 deadline, bytes calldata signature) external {
        _checkUpdate(d.hh, d.wallet, ROLE_DOCTOR, d.name);
        bytes memory encoded = abi.encode(d);
        _consentUpdate(d.hh, d.wallet, ROLE_DOCTOR, encoded, deadline, signature);
        doctors[d.hh] = d;
        emit ProfileUpdated(d.hh, ROLE_DOCTOR, encoded);
    }

    function updateDiagnosticCenter(DiagnosticCenter calldata c, uint64 deadline, bytes calldata signature)
        external
    {
        _checkUpdate(c.hh, c.wallet, ROLE_DIAGNOSTIC_CENTER, c.name);
        bytes memory encoded = abi.encode(c);
        _consentUpdate(c.hh, c.wallet, ROLE_DIAGNOSTIC_CENTER, encoded, deadline, signature);
        centers[c.hh] = c;
        emit ProfileUpdated(c.hh, ROLE_DIAGNOSTIC_CENTER, encoded);
    }

    function _checkUpdate(uint32 hh, address wallet, uint8 role, string calldata name) private view {
        uint8 current = roleOf[hh];
        if (current == ROLE_NONE) revert NotRegistered(hh);
        if (current != role) revert InvalidInput("the role of an HH number cannot change");
        if (walletOf[hh] != wallet) revert InvalidInput("the wallet of an HH number cannot change");
        if (bytes(name).length == 0) revert InvalidInput("name is empty");
    }

    function _consentUpdate(
        uint32 hh,
        address wallet,
        uint8 role,
        bytes memory encoded,
        uint64 deadline,
        bytes calldata signature
    ) private {
        if (signature.length == 0) {
            _consent(wallet, bytes32(0), deadline, signature);
            return;
        }
        bytes32 structHash = keccak256(
            abi.encode(UPDATE_PROFILE_TYPEHASH, hh, role, keccak256(encoded), nonces[wallet], deadline)
        );
        _consent(wallet, structHash, deadline, signature);
    }

    // ---------------------------------------------------------------- records

    function createRecord(
        uint32 patientHH,
        uint64 recordId,
        uint32 creatorHH,
        bytes calldata cid,
        RecordMeta calldata meta,
        uint64 deadline,
        bytes calldata signature
    ) external {
        uint8 creatorRole = roleOf[creatorHH];
        if (creatorRole == ROLE_NONE) revert NotRegistered(creatorHH);
        if (creatorRole == ROLE_PATIENT) revert NotAuthorized(walletOf[creatorHH]);
        if (roleOf[patientHH] != ROLE_PATIENT) revert NotRegistered(patientHH);
        uint256 key = recordKey(patientHH, recordId);
        if (records[key].creatorHH != 0) revert RecordExists(patientHH, recordId);
        if (cid.length == 0) revert InvalidInput("CID is empty");
        address wallet = walletOf[creatorHH];
        bytes32 structHash;
        if (signature.length != 0) {
            structHash = keccak256(
                abi.encode(
                    CREATE_RECORD_TYPEHASH,
                    patientHH,
                    recordId,
                    creatorHH,
                    keccak256(abi.encode(cid, meta)),
                    nonces[wallet],
                    deadline
                )
            );
        }
        _consent(wallet, structHash, deadline, signature);

        uint64 now_ = uint64(block.timestamp);
        Record storage r = records[key];
        r.patientHH = patientHH;
        r.recordId = recordId;
        r.creatorHH = creatorHH;
        r.cid = cid;
        r.meta = meta;
        r.createdAt = now_;
        recordKeys.push(key);
        patientRecords[patientHH].push(recordId);
        emit RecordCreated(patientHH, recordId, creatorHH, cid, meta, now_);
    }

    // ----------------------------------------------------------------- grants

    function grantAccess(
        uint32 patientHH,
        uint32 granteeHH,
        uint64 expiresAt,
        uint64 deadline,
        bytes calldata signature
    ) external {
        _checkGrantParties(patientHH, granteeHH);
        uint64 now_ = uint64(block.timestamp);
        if (expiresAt != 0 && expiresAt <= now_) revert InvalidInput("expiry is not after the block time");
        address wallet = walletOf[patientHH];
        bytes32 structHash;
        if (signature.length != 0) {
            structHash = keccak256(
                abi.encode(GRANT_ACCESS_TYPEHASH, patientHH, granteeHH, expiresAt, nonces[wallet], deadline)
            );
        }
        _consent(wallet, structHash, deadline, signature);

        if (grants[patientHH][granteeHH].grantedAt == 0) granteeList[patientHH].push(granteeHH);
        grants[patientHH][granteeHH] = Grant(now_, expiresAt, 0);
        emit AccessGranted(patientHH, granteeHH, now_, expiresAt);
    }

    function revokeAccess(uint32 patientHH, uint32 granteeHH, uint64 deadline, bytes calldata signature) external {
        _checkGrantParties(patientHH, granteeHH);
        Grant storage g = grants[patientHH][granteeHH];
        if (g.grantedAt == 0 || g.revokedAt != 0) revert NoActiveGrant(patientHH, granteeHH);
        address wallet = walletOf[patientHH];
        bytes32 structHash;
        if (signature.length != 0) {
            structHash =
                keccak256(abi.encode(REVOKE_ACCESS_TYPEHASH, patientHH, granteeHH, nonces[wallet], deadline));
        }
        _consent(wallet, structHash, deadline, signature);

        uint64 now_ = uint64(block.timestamp);
        g.revokedAt = now_;
        emit AccessRevoked(patientHH, granteeHH, now_);
    }

    function _checkGrantParties(uint32 patientHH, uint32 granteeHH) private view {
        if (roleOf[patientHH] != ROLE_PATIENT) revert NotRegistered(patientHH);
        if (roleOf[granteeHH] == ROLE_NONE) revert NotRegistered(granteeHH);
        if (patientHH == granteeHH) revert InvalidInput("a patient cannot grant access to themselves");
    }

    // ------------------------------------------------------------------ audit

    function anchorAudit(bytes32 digest, uint64 lastSeq) external {
        if (!isRegistrar[msg.sender]) revert NotAuthorized(msg.sender);
        if (lastSeq <= lastAnchoredSeq) revert InvalidInput("audit seq must grow");
        lastAnchoredSeq = lastSeq;
        emit AuditAnchored(digest, lastSeq, uint64(block.timestamp));
    }

    // ---------------------------------------------------------------- consent

    /// Checks that `wallet` consents: as the sender when `signature` is empty,
    /// else as the EIP-712 signer of `structHash` before `deadline`; a valid
    /// signature uses up the wallet's nonce.
    function _consent(address wallet, bytes32 structHash, uint64 deadline, bytes calldata signature) private {
        if (signature.length == 0) {
            if (msg.sender != wallet) revert NotAuthorized(msg.sender);
            return;
        }
        if (block.timestamp > deadline) revert Expired(deadline, uint64(block.timestamp));
        if (signature.length != 65) revert InvalidSignature(wallet);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert InvalidSignature(wallet);
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0) || signer != wallet) revert InvalidSignature(wallet);
        nonces[wallet] += 1;
    }

    /// The EIP-712 domain separator (recomputed so it follows a chain fork).
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    // ------------------------------------------------------------------ reads

    /// The key under which a record is stored: the patient's HH number above the id.
    function recordKey(uint32 patientHH, uint64 recordId) public pure returns (uint256) {
        return (uint256(patientHH) << 64) | uint256(recordId);
    }

    function getPatient(uint32 hh) external view returns (Patient memory) {
        return patients[hh];
    }

    function getDoctor(uint32 hh) external view returns (Doctor memory) {
        return doctors[hh];
    }

    function getDiagnosticCenter(uint32 hh) external view returns (DiagnosticCenter memory) {
        return centers[hh];
    }

    /// The role and HH number of `wallet` (role 0 when it owns none).
    function accountOf(address wallet) external view returns (uint8 role, uint32 hh) {
        hh = hhOf[wallet];
        role = roleOf[hh];
    }

    /// The record, or one with `creatorHH == 0` when there is none.
    function getRecord(uint32 patientHH, uint64 recordId) external view returns (Record memory) {
        return records[recordKey(patientHH, recordId)];
    }

    /// The grant from `patientHH` to `granteeHH`; `grantedAt == 0` when none was ever made.
    function getGrant(uint32 patientHH, uint32 granteeHH) external view returns (Grant memory) {
        return grants[patientHH][granteeHH];
    }

    function hasAccess(uint32 patientHH, uint32 granteeHH) public view returns (bool) {
        Grant storage g = grants[patientHH][granteeHH];
        return g.grantedAt != 0 && g.revokedAt == 0 && (g.expiresAt == 0 || block.timestamp < g.expiresAt);
    }

    /// Whether `readerHH` may read the record: its patient and creator always may,
    /// anyone else needs an active grant from the patient.
    function canReadRecord(uint32 patientHH, uint64 recordId, uint32 readerHH) external view returns (bool) {
        Record storage r = records[recordKey(patientHH, recordId)];
        if (r.creatorHH == 0) revert UnknownRecord(patientHH, recordId);
        return readerHH == patientHH || readerHH == r.creatorHH || hasAccess(patientHH, readerHH);
    }

    // ------------------------------------------------------------ enumeration

    function registeredCount(uint8 role) external view returns (uint256) {
        return byRole[role].length;
    }

    function registeredAt(uint8 role, uint256 index) external view returns (uint32) {
        return byRole[role][index];
    }

    /// Up to `limit` HH numbers of `role` from `offset`, in registration order.
    function registeredPage(uint8 role, uint256 offset, uint256 limit) external view returns (uint32[] memory page) {
        uint32[] storage all = byRole[role];
        uint256 end = _pageEnd(all.length, offset, limit);
        page = new uint32[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = all[i];
        }
    }

    function recordCount() external view returns (uint256) {
        return recordKeys.length;
    }

    /// The patient and id of the `index`-th record ever created.
    function recordAt(uint256 index) external view returns (uint32 patientHH, uint64 recordId) {
        uint256 key = recordKeys[index];
        return (uint32(key >> 64), uint64(key));
    }

    /// Up to `limit` records from `offset`, in creation order.
    function recordPage(uint256 offset, uint256 limit)
        external
        view
        returns (uint32[] memory patientHHs, uint64[] memory recordIds)
    {
        uint256 end = _pageEnd(recordKeys.length, offset, limit);
        uint256 n = end > offset ? end - offset : 0;
        patientHHs = new uint32[](n);
        recordIds = new uint64[](n);
        for (uint256 i = 0; i < n; i++) {
            uint256 key = recordKeys[offset + i];
            patientHHs[i] = uint32(key >> 64);
            recordIds[i] = uint64(key);
        }
    }

    function patientRecordCount(uint32 patientHH) external view returns (uint256) {
        return patientRecords[patientHH].length;
    }

    function patientRecordAt(uint32 patientHH, uint256 index) external view returns (uint64) {
        return patientRecords[patientHH][index];
    }

    /// Every grantee `patientHH` ever granted, in first-grant order.
    function grantees(uint32 patientHH) external view returns (uint32[] memory) {
        return granteeList[patientHH];
    }

    function granteeCount(uint32 patientHH) external view returns (uint256) {
        return granteeList[patientHH].length;
    }

    function granteeAt(uint32 patientHH, uint256 index) external view returns (uint32) {
        return granteeList[patientHH][index];
    }

    function _pageEnd(uint256 length, uint256 offset, uint256 limit) private pure returns (uint256) {
        if (offset >= length) return offset;
        uint256 room = length - offset;
        return offset + (limit < room ? limit : room);
    }
}
