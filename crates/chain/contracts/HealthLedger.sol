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
/// nonce, so it works once, and a wallet can use up its nonce to cancel the
/// signatures it handed out. HH numbers are issued, never taken: registrars
/// register everyone, and a patient may register from their own wallet only with
/// a registrar's EIP-712 attestation of (HH number, wallet, deadline). Every
/// value a profile or record carries is validated here as the Rust domain types
/// validate it, so every event the contract emits decodes.
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
    error Suspended(uint32 hh);

    // ----------------------------------------------------------------- events

    /// `registrar` issued the HH number: it sent the registration itself, or
    /// (`attested`) the patient sent it carrying that registrar's attestation.
    event PatientRegistered(
        uint32 indexed hh, address indexed wallet, address indexed registrar, Patient profile, bool attested
    );
    /// Doctors and diagnostic centers are registered by `registrar` itself.
    event DoctorRegistered(uint32 indexed hh, address indexed wallet, address indexed registrar, Doctor profile);
    event DiagnosticCenterRegistered(
        uint32 indexed hh, address indexed wallet, address indexed registrar, DiagnosticCenter profile
    );
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
    event AdminTransferStarted(address indexed admin, address indexed pendingAdmin);
    event AdminChanged(address indexed previousAdmin, address indexed admin);
    event NonceInvalidated(address indexed wallet, uint256 nonce);
    event ProviderSuspended(uint32 indexed hh);
    event ProviderReinstated(uint32 indexed hh);

    // ---------------------------------------------------------------- EIP-712

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("HealthLedger");
    bytes32 private constant VERSION_HASH = keccak256("1");
    // Consent messages nest the profile or record metadata as EIP-712
    // structs, strings and bytes hashed as the standard says, so a wallet
    // shows the signer every field it signs (eth_signTypedData_v4).
    bytes32 public constant UPDATE_PATIENT_TYPEHASH = keccak256(
        "UpdatePatient(Patient profile,uint256 nonce,uint64 deadline)Patient(uint32 hh,address wallet,string name,string dateOfBirth,string gender,string bloodGroup,string homeAddress,string email)"
    );
    bytes32 public constant UPDATE_DOCTOR_TYPEHASH = keccak256(
        "UpdateDoctor(Doctor profile,uint256 nonce,uint64 deadline)Doctor(uint32 hh,address wallet,string name,string specialization,string hospital,string email)"
    );
    bytes32 public constant UPDATE_DIAGNOSTIC_CENTER_TYPEHASH = keccak256(
        "UpdateDiagnosticCenter(DiagnosticCenter profile,uint256 nonce,uint64 deadline)DiagnosticCenter(uint32 hh,address wallet,string name,string location,string email)"
    );
    bytes32 public constant CREATE_RECORD_TYPEHASH = keccak256(
        "CreateRecord(uint32 patientHH,uint64 recordId,uint32 creatorHH,bytes cid,RecordMeta meta,uint256 nonce,uint64 deadline)RecordMeta(string testName,string recordType,string date,string contentType,uint64 size)"
    );
    bytes32 public constant GRANT_ACCESS_TYPEHASH = keccak256(
        "GrantAccess(uint32 patientHH,uint32 granteeHH,uint64 expiresAt,uint256 nonce,uint64 deadline)"
    );
    bytes32 public constant REVOKE_ACCESS_TYPEHASH =
        keccak256("RevokeAccess(uint32 patientHH,uint32 granteeHH,uint256 nonce,uint64 deadline)");
    bytes32 public constant PATIENT_ATTESTATION_TYPEHASH =
        keccak256("PatientAttestation(uint32 hh,address wallet,uint64 deadline)");

    /// What `connect` checks to know the address holds this contract, at this
    /// interface version.
    string public constant INTERFACE = "HealthLedger/3";
    /// Half the secp256k1 order: signatures with a larger `s` are malleable copies.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ------------------------------------------------------------------ state

    address public admin;
    /// The admin-to-be while a handover is under way (two steps: offer, accept).
    address public pendingAdmin;
    /// The block the contract was deployed in: scans for its events start here.
    uint64 public immutable deploymentBlock;
    /// The validation rules, a contract of their own (created with this one)
    /// so that this contract's code stays under the 24 KiB limit.
    HealthLedgerRules public immutable rules;
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

    mapping(uint32 => mapping(uint32 => Grant)) private grants;
    mapping(uint32 => uint32[]) private granteeList;
    /// Every (patient, grantee) pair ever granted, in first-grant order, as
    /// `patientHH << 32 | granteeHH`.
    uint64[] private grantPairs;

    mapping(address => uint256) public nonces;
    /// Doctors and centers the admin suspended: they create no records and
    /// receive no grants until reinstated.
    mapping(uint32 => bool) public suspended;
    uint64 public lastAnchoredSeq;
    bytes32 public lastAnchorDigest;
    uint64 public lastAnchoredAt;

    constructor() {
        admin = msg.sender;
        deploymentBlock = uint64(block.number);
        rules = new HealthLedgerRules();
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

    /// The admin suspends a doctor or diagnostic center.
    function suspendProvider(uint32 hh) external {
        if (msg.sender != admin) revert NotAuthorized(msg.sender);
        uint8 role = roleOf[hh];
        if (role != ROLE_DOCTOR && role != ROLE_DIAGNOSTIC_CENTER) revert NotRegistered(hh);
        if (suspended[hh]) revert InvalidInput("the provider is already suspended");
        suspended[hh] = true;
        emit ProviderSuspended(hh);
    }

    /// The admin reinstates a suspended provider.
    function reinstateProvider(uint32 hh) external {
        if (msg.sender != admin) revert NotAuthorized(msg.sender);
        if (!suspended[hh]) revert InvalidInput("the provider is not suspended");
        suspended[hh] = false;
        emit ProviderReinstated(hh);
    }

    /// First step of an admin handover: the admin offers the role.
    function transferAdmin(address newAdmin) external {
        if (msg.sender != admin) revert NotAuthorized(msg.sender);
        if (newAdmin == address(0)) revert InvalidInput("admin is the zero address");
        pendingAdmin = newAdmin;
        emit AdminTransferStarted(msg.sender, newAdmin);
    }

    /// Second step: the offered wallet accepts, proving it can sign.
    function acceptAdmin() external {
        if (msg.sender != pendingAdmin || msg.sender == address(0)) revert NotAuthorized(msg.sender);
        address previous = admin;
        admin = msg.sender;
        pendingAdmin = address(0);
        emit AdminChanged(previous, msg.sender);
    }

    // ------------------------------------------------------------ registration

    function registerPatient(Patient calldata p) external {
        if (!isRegistrar[msg.sender]) revert NotAuthorized(msg.sender);
        _storePatient(p);
        emit PatientRegistered(p.hh, p.wallet, msg.sender, p, false);
    }

    /// A patient registers from their own wallet with a registrar's
    /// attestation that `p.hh` is issued to `p.wallet` until `deadline`.
    function registerPatientAttested(Patient calldata p, uint64 deadline, bytes calldata attestation) external {
        if (msg.sender != p.wallet) revert NotAuthorized(msg.sender);
        if (block.timestamp > deadline) revert Expired(deadline, uint64(block.timestamp));
        bytes32 structHash = keccak256(abi.encode(PATIENT_ATTESTATION_TYPEHASH, p.hh, p.wallet, deadline));
        address registrar = _recover(structHash, attestation);
        if (registrar == address(0) || !isRegistrar[registrar]) revert InvalidSignature(registrar);
        _storePatient(p);
        emit PatientRegistered(p.hh, p.wallet, registrar, p, true);
    }

    function registerDoctor(Doctor calldata d) external {
        if (!isRegistrar[msg.sender]) revert NotAuthorized(msg.sender);
        rules.checkDoctor(d);
        _register(d.hh, d.wallet, ROLE_DOCTOR);
        doctors[d.hh] = d;
        emit DoctorRegistered(d.hh, d.wallet, msg.sender, d);
    }

    function registerDiagnosticCenter(DiagnosticCenter calldata c) external {
        if (!isRegistrar[msg.sender]) revert NotAuthorized(msg.sender);
        rules.checkCenter(c);
        _register(c.hh, c.wallet, ROLE_DIAGNOSTIC_CENTER);
        centers[c.hh] = c;
        emit DiagnosticCenterRegistered(c.hh, c.wallet, msg.sender, c);
    }

    // The caller emits PatientRegistered: passing the registrar and the flag
    // in here costs about 1.4 KiB of code (the optimizer stops inlining).
    function _storePatient(Patient calldata p) private {
        rules.checkPatient(p);
        _register(p.hh, p.wallet, ROLE_PATIENT);
        patients[p.hh] = p;
    }

    function _register(uint32 hh, address wallet, uint8 role) private {
        if (roleOf[hh] != ROLE_NONE || hhOf[wallet] != 0) revert AlreadyRegistered(hh, wallet);
        roleOf[hh] = role;
        walletOf[hh] = wallet;
        hhOf[wallet] = hh;
        byRole[role].push(hh);
    }

    // ---------------------------------------------------------------- updates

    function updatePatient(Patient calldata p, uint64 deadline, bytes calldata signature) external {
        _checkUpdate(p.hh, p.wallet, ROLE_PATIENT);
        rules.checkPatient(p);
        bytes memory encoded = abi.encode(p);
        _consentUpdate(p.wallet, UPDATE_PATIENT_TYPEHASH, rules.hashPatient(p), deadline, signature);
        patients[p.hh] = p;
        emit ProfileUpdated(p.hh, ROLE_PATIENT, encoded);
    }

    function updateDoctor(Doctor calldata d, uint64 deadline, bytes calldata signature) external {
        _checkUpdate(d.hh, d.wallet, ROLE_DOCTOR);
        rules.checkDoctor(d);
        bytes memory encoded = abi.encode(d);
        _consentUpdate(d.wallet, UPDATE_DOCTOR_TYPEHASH, rules.hashDoctor(d), deadline, signature);
        doctors[d.hh] = d;
        emit ProfileUpdated(d.hh, ROLE_DOCTOR, encoded);
    }

    function updateDiagnosticCenter(DiagnosticCenter calldata c, uint64 deadline, bytes calldata signature)
        external
    {
        _checkUpdate(c.hh, c.wallet, ROLE_DIAGNOSTIC_CENTER);
        rules.checkCenter(c);
        bytes memory encoded = abi.encode(c);
        _consentUpdate(c.wallet, UPDATE_DIAGNOSTIC_CENTER_TYPEHASH, rules.hashCenter(c), deadline, signature);
        centers[c.hh] = c;
        emit ProfileUpdated(c.hh, ROLE_DIAGNOSTIC_CENTER, encoded);
    }

    function _checkUpdate(uint32 hh, address wallet, uint8 role) private view {
        uint8 current = roleOf[hh];
        if (current == ROLE_NONE) revert NotRegistered(hh);
        if (current != role) revert InvalidInput("the role of an HH number cannot change");
        if (walletOf[hh] != wallet) revert InvalidInput("the wallet of an HH number cannot change");
    }

    function _consentUpdate(
        address wallet,
        bytes32 typeHash,
        bytes32 profileHash,
        uint64 deadline,
        bytes calldata signature
    ) private {
        bytes32 structHash;
        if (signature.length != 0) {
            structHash = keccak256(abi.encode(typeHash, profileHash, nonces[wallet], deadline));
        }
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
        if (suspended[creatorHH]) revert Suspended(creatorHH);
        if (roleOf[patientHH] != ROLE_PATIENT) revert NotRegistered(patientHH);
        uint256 key = recordKey(patientHH, recordId);
        if (records[key].creatorHH != 0) revert RecordExists(patientHH, recordId);
        rules.checkRecord(creatorHH, recordId, cid, meta);
        address wallet = walletOf[creatorHH];
        bytes32 structHash;
        if (signature.length != 0) {
            structHash = keccak256(
                abi.encode(
                    CREATE_RECORD_TYPEHASH,
                    patientHH,
                    recordId,
                    creatorHH,
                    keccak256(cid),
                    rules.hashMeta(meta),
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
        if (suspended[granteeHH]) revert Suspended(granteeHH);
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

        if (grants[patientHH][granteeHH].grantedAt == 0) {
            granteeList[patientHH].push(granteeHH);
            grantPairs.push((uint64(patientHH) << 32) | uint64(granteeHH));
        }
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
        lastAnchorDigest = digest;
        lastAnchoredAt = uint64(block.timestamp);
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
        address signer = _recover(structHash, signature);
        if (signer == address(0) || signer != wallet) revert InvalidSignature(wallet);
        nonces[wallet] += 1;
    }

    /// The EIP-712 signer of `structHash`, or zero for a malformed or
    /// malleable signature.
    function _recover(bytes32 structHash, bytes calldata signature) private view returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        return ecrecover(digest, v, r, s);
    }

    /// Uses up the sender's nonce: every consent signature it handed out and
    /// that was not relayed yet stops working.
    function invalidateNonce() external {
        uint256 used = nonces[msg.sender];
        nonces[msg.sender] = used + 1;
        emit NonceInvalidated(msg.sender, used);
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

    function _pageEnd(uint256 length, uint256 offset, uint256 limit) private pure returns (uint256) {
        if (offset >= length) return offset;
        uint256 room = length - offset;
        return offset + (limit < room ? limit : room);
    }

    // ------------------------------------------------------------ bulk reads

    /// Whole patient profiles in registration order, from `offset`, at most `limit`.
    function patientsPage(uint256 offset, uint256 limit) external view returns (Patient[] memory page) {
        uint32[] storage all = byRole[ROLE_PATIENT];
        uint256 end = _pageEnd(all.length, offset, limit);
        page = new Patient[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = patients[all[i]];
        }
    }

    /// Whole doctor profiles in registration order, from `offset`, at most `limit`.
    function doctorsPage(uint256 offset, uint256 limit) external view returns (Doctor[] memory page) {
        uint32[] storage all = byRole[ROLE_DOCTOR];
        uint256 end = _pageEnd(all.length, offset, limit);
        page = new Doctor[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = doctors[all[i]];
        }
    }

    /// Whole diagnostic-center profiles in registration order, from `offset`, at most `limit`.
    function centersPage(uint256 offset, uint256 limit) external view returns (DiagnosticCenter[] memory page) {
        uint32[] storage all = byRole[ROLE_DIAGNOSTIC_CENTER];
        uint256 end = _pageEnd(all.length, offset, limit);
        page = new DiagnosticCenter[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = centers[all[i]];
        }
    }

    /// Whole records in creation order, from `offset`, at most `limit`.
    function recordsPage(uint256 offset, uint256 limit) external view returns (Record[] memory page) {
        uint256 end = _pageEnd(recordKeys.length, offset, limit);
        page = new Record[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = records[recordKeys[i]];
        }
    }

    struct GrantEntry {
        uint32 patientHH;
        uint32 granteeHH;
        Grant grant;
    }

    function grantPairCount() external view returns (uint256) {
        return grantPairs.length;
    }

    /// Every (patient, grantee) pair ever granted with its grant as it stands,
    /// in first-grant order, from `offset`, at most `limit`.
    function grantsPage(uint256 offset, uint256 limit) external view returns (GrantEntry[] memory page) {
        uint256 end = _pageEnd(grantPairs.length, offset, limit);
        page = new GrantEntry[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            uint64 pair = grantPairs[i];
            uint32 patientHH = uint32(pair >> 32);
            uint32 granteeHH = uint32(pair);
            page[i - offset] = GrantEntry(patientHH, granteeHH, grants[patientHH][granteeHH]);
        }
    }

    /// The grantees `patientHH` ever granted, in first-grant order, from `offset`, at most `limit`.
    function granteesPage(uint32 patientHH, uint256 offset, uint256 limit)
        external
        view
        returns (uint32[] memory page)
    {
        uint32[] storage all = granteeList[patientHH];
        uint256 end = _pageEnd(all.length, offset, limit);
        page = new uint32[](end > offset ? end - offset : 0);
        for (uint256 i = offset; i < end; i++) {
            page[i - offset] = all[i];
        }
    }
}

/// @title HealthLedgerRules
/// @notice The validation rules of the Rust domain types (healthledger-core),
/// checked before anything is stored, so that every value HealthLedger stores
/// and every event it emits decodes there. HealthLedger creates this contract
/// in its constructor and calls it; it is a contract of its own only to keep
/// HealthLedger's code under the 24 KiB limit.
/// @dev Text is counted in characters (UTF-8 code points) as Rust counts them;
/// whitespace at the ends and control characters are checked for ASCII and the
/// C1 range. Anything the Rust rules refuse beyond that (Unicode whitespace at
/// the ends) is caught by the adapter, which quarantines such a log instead of
/// failing the range.
contract HealthLedgerRules {
    bytes32 private constant PATIENT_TYPEHASH = keccak256(
        "Patient(uint32 hh,address wallet,string name,string dateOfBirth,string gender,string bloodGroup,string homeAddress,string email)"
    );
    bytes32 private constant DOCTOR_TYPEHASH =
        keccak256("Doctor(uint32 hh,address wallet,string name,string specialization,string hospital,string email)");
    bytes32 private constant CENTER_TYPEHASH =
        keccak256("DiagnosticCenter(uint32 hh,address wallet,string name,string location,string email)");
    bytes32 private constant META_TYPEHASH =
        keccak256("RecordMeta(string testName,string recordType,string date,string contentType,uint64 size)");

    /// EIP-712 `hashStruct` of a patient profile.
    function hashPatient(HealthLedger.Patient calldata p) external pure returns (bytes32) {
        return keccak256(
            abi.encode(
                PATIENT_TYPEHASH,
                p.hh,
                p.wallet,
                keccak256(bytes(p.name)),
                keccak256(bytes(p.dateOfBirth)),
                keccak256(bytes(p.gender)),
                keccak256(bytes(p.bloodGroup)),
                keccak256(bytes(p.homeAddress)),
                keccak256(bytes(p.email))
            )
        );
    }

    /// EIP-712 `hashStruct` of a doctor profile.
    function hashDoctor(HealthLedger.Doctor calldata d) external pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DOCTOR_TYPEHASH,
                d.hh,
                d.wallet,
                keccak256(bytes(d.name)),
                keccak256(bytes(d.specialization)),
                keccak256(bytes(d.hospital)),
                keccak256(bytes(d.email))
            )
        );
    }

    /// EIP-712 `hashStruct` of a diagnostic-center profile.
    function hashCenter(HealthLedger.DiagnosticCenter calldata c) external pure returns (bytes32) {
        return keccak256(
            abi.encode(
                CENTER_TYPEHASH, c.hh, c.wallet, keccak256(bytes(c.name)), keccak256(bytes(c.location)), keccak256(bytes(c.email))
            )
        );
    }

    /// EIP-712 `hashStruct` of a record's metadata.
    function hashMeta(HealthLedger.RecordMeta calldata m) external pure returns (bytes32) {
        return keccak256(
            abi.encode(
                META_TYPEHASH,
                keccak256(bytes(m.testName)),
                keccak256(bytes(m.recordType)),
                keccak256(bytes(m.date)),
                keccak256(bytes(m.contentType)),
                m.size
            )
        );
    }


    function checkPatient(HealthLedger.Patient calldata p) external pure {
        _validateHh(p.hh);
        if (p.wallet == address(0)) revert HealthLedger.InvalidInput("wallet is the zero address");
        _text(p.name, 128, "name must be 1-128 characters on one line");
        _date(p.dateOfBirth, "date of birth must be YYYY-MM-DD");
        _text(p.gender, 64, "gender must be 1-64 characters on one line");
        _bloodGroup(p.bloodGroup);
        _text(p.homeAddress, 256, "home address must be 1-256 characters on one line");
        _email(p.email);
    }

    function checkDoctor(HealthLedger.Doctor calldata d) external pure {
        _validateHh(d.hh);
        if (d.wallet == address(0)) revert HealthLedger.InvalidInput("wallet is the zero address");
        _text(d.name, 128, "name must be 1-128 characters on one line");
        _text(d.specialization, 64, "specialization must be 1-64 characters on one line");
        _text(d.hospital, 256, "hospital must be 1-256 characters on one line");
        _email(d.email);
    }

    function checkCenter(HealthLedger.DiagnosticCenter calldata c) external pure {
        _validateHh(c.hh);
        if (c.wallet == address(0)) revert HealthLedger.InvalidInput("wallet is the zero address");
        _text(c.name, 128, "name must be 1-128 characters on one line");
        _text(c.location, 256, "location must be 1-256 characters on one line");
        _email(c.email);
    }

    /// A record's id, CID and metadata. Ids are namespaced by their creator
    /// (its HH number, then 13 digits of its own), so no provider can take
    /// another's ids first.
    function checkRecord(uint32 creatorHH, uint64 recordId, bytes calldata cid, HealthLedger.RecordMeta calldata m)
        external
        pure
    {
        if (recordId / 1e13 != creatorHH) {
            revert HealthLedger.InvalidInput("record id must be the creator's HH number followed by 13 digits");
        }
        _validateCid(cid);
        _text(m.testName, 128, "test name must be 1-128 characters on one line");
        _text(m.recordType, 64, "record type must be 1-64 characters on one line");
        _date(m.date, "record date must be YYYY-MM-DD");
        _contentType(m.contentType);
    }

    function _validateHh(uint32 hh) private pure {
        if (hh < 100000 || hh > 999999) revert HealthLedger.InvalidInput("HH number must be 100000 to 999999");
    }

    function _isSpace(bytes1 c) private pure returns (bool) {
        return c == 0x20 || (c >= 0x09 && c <= 0x0d);
    }

    function _text(string calldata value, uint256 maxChars, string memory rule) private pure {
        bytes calldata b = bytes(value);
        if (b.length == 0 || _isSpace(b[0]) || _isSpace(b[b.length - 1])) revert HealthLedger.InvalidInput(rule);
        uint256 chars = 0;
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            if (c < 0x20 || c == 0x7f) revert HealthLedger.InvalidInput(rule);
            // C1 controls U+0080-U+009F are 0xC2 0x80-0x9F in UTF-8.
            if (c == 0xc2 && i + 1 < b.length && b[i + 1] >= 0x80 && b[i + 1] <= 0x9f) revert HealthLedger.InvalidInput(rule);
            if ((uint8(c) & 0xc0) != 0x80) chars++;
        }
        if (chars > maxChars) revert HealthLedger.InvalidInput(rule);
    }

    function _digits(bytes calldata b, uint256 from, uint256 to) private pure returns (bool ok, uint256 n) {
        for (uint256 i = from; i < to; i++) {
            if (b[i] < "0" || b[i] > "9") return (false, 0);
            n = n * 10 + (uint8(b[i]) - 48);
        }
        return (true, n);
    }

    function _date(string calldata value, string memory rule) private pure {
        bytes calldata b = bytes(value);
        if (b.length != 10 || b[4] != "-" || b[7] != "-") revert HealthLedger.InvalidInput(rule);
        (bool okY, uint256 y) = _digits(b, 0, 4);
        (bool okM, uint256 m) = _digits(b, 5, 7);
        (bool okD, uint256 d) = _digits(b, 8, 10);
        if (!okY || !okM || !okD || m < 1 || m > 12 || d < 1) revert HealthLedger.InvalidInput(rule);
        uint256 days_ = 31;
        if (m == 4 || m == 6 || m == 9 || m == 11) days_ = 30;
        if (m == 2) days_ = (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28;
        if (d > days_) revert HealthLedger.InvalidInput(rule);
    }

    function _bloodGroup(string calldata value) private pure {
        bytes32 h = keccak256(bytes(value));
        if (
            h != keccak256("A+") && h != keccak256("A-") && h != keccak256("B+") && h != keccak256("B-")
                && h != keccak256("AB+") && h != keccak256("AB-") && h != keccak256("O+") && h != keccak256("O-")
        ) revert HealthLedger.InvalidInput("blood group must be one of A+, A-, B+, B-, AB+, AB-, O+, O-");
    }

    function _isAlnum(bytes1 c) private pure returns (bool) {
        return (c >= "0" && c <= "9") || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
    }

    function _email(string calldata value) private pure {
        string memory rule = "email must be local@domain with a dotted domain";
        bytes calldata b = bytes(value);
        if (b.length > 254) revert HealthLedger.InvalidInput(rule);
        uint256 at = type(uint256).max;
        for (uint256 i = 0; i < b.length; i++) {
            if (b[i] == "@") at = i;
        }
        if (at == type(uint256).max || at == 0 || at > 64 || at + 1 >= b.length) revert HealthLedger.InvalidInput(rule);
        // Local part: dot-atoms of letters, digits and !#$%&'*+-/=?^_`{|}~.
        bytes memory specials = "!#$%&'*+-/=?^_`{|}~";
        if (b[0] == "." || b[at - 1] == ".") revert HealthLedger.InvalidInput(rule);
        for (uint256 i = 0; i < at; i++) {
            bytes1 c = b[i];
            if (c == ".") {
                if (b[i + 1] == ".") revert HealthLedger.InvalidInput(rule);
                continue;
            }
            if (_isAlnum(c)) continue;
            bool special = false;
            for (uint256 k = 0; k < specials.length; k++) {
                if (specials[k] == c) special = true;
            }
            if (!special) revert HealthLedger.InvalidInput(rule);
        }
        // Domain: at least two labels of 1-63 letters, digits and inner hyphens.
        uint256 labels = 0;
        uint256 start = at + 1;
        for (uint256 i = at + 1; i <= b.length; i++) {
            if (i == b.length || b[i] == ".") {
                uint256 len = i - start;
                if (len == 0 || len > 63 || b[start] == "-" || b[i - 1] == "-") revert HealthLedger.InvalidInput(rule);
                labels++;
                start = i + 1;
            } else if (!_isAlnum(b[i]) && b[i] != "-") {
                revert HealthLedger.InvalidInput(rule);
            }
        }
        if (labels < 2) revert HealthLedger.InvalidInput(rule);
    }

    function _contentType(string calldata value) private pure {
        string memory rule = "content type must be lowercase type/subtype of letters, digits and !#$&^_.+-";
        bytes calldata b = bytes(value);
        if (b.length == 0 || b.length > 127) revert HealthLedger.InvalidInput(rule);
        bytes memory specials = "!#$&^_.+-";
        uint256 slashes = 0;
        uint256 slash = 0;
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            if (c == "/") {
                slashes++;
                slash = i;
                continue;
            }
            if ((c >= "0" && c <= "9") || (c >= "a" && c <= "z")) continue;
            bool special = false;
            for (uint256 k = 0; k < specials.length; k++) {
                if (specials[k] == c) special = true;
            }
            if (!special) revert HealthLedger.InvalidInput(rule);
        }
        if (slashes != 1 || slash == 0 || slash == b.length - 1) revert HealthLedger.InvalidInput(rule);
    }

    /// A CID of a sha2-256 multihash, as the vault produces: CIDv0 (34 bytes,
    /// 0x12 0x20 + digest) or CIDv1 with a one-byte codec (36 bytes, 0x01 codec
    /// 0x12 0x20 + digest).
    function _validateCid(bytes calldata cid) private pure {
        string memory rule = "CID must be a CIDv0 or CIDv1 of a sha2-256 multihash";
        if (cid.length == 34) {
            if (cid[0] != 0x12 || cid[1] != 0x20) revert HealthLedger.InvalidInput(rule);
        } else if (cid.length == 36) {
            if (cid[0] != 0x01 || uint8(cid[1]) >= 0x80 || cid[2] != 0x12 || cid[3] != 0x20) revert HealthLedger.InvalidInput(rule);
        } else {
            revert HealthLedger.InvalidInput(rule);
        }
    }
}
